"""No turning back and forth on the spot: once the robot turns in place one way, a candidate whose command would turn
it in place the other way is not executed until the robot has moved on.

Traced on test map gen1000013 (the general model, averse:0.1, docs/method_choices.md): the robot stood still from
5 s to the time limit, its command alternating (0, +2) and (0, -2) rad/s every tick. Two groups of candidates, one
turning left and one right, each scored best from the heading the other had left it at. All 7 failures of that
test-map run (1,000 episodes) were time limits of a robot standing still, and their returns made the pooled CVaR;
on gen1000009 the same alternation came from the only candidates admitted (progress_checker.py handles that one).
Nav2's DWB makes such a trajectory illegal (OscillationCritic: a command that flips the sign of the rotation before
the robot has moved oscillation_reset_dist); this is the same rule for the one oscillation seen here, the in-place
turn. It restricts, it does not choose: the critic's best candidate among the rest runs.

Where every candidate the collision check admits would turn back, the robot keeps turning the held way on the spot
(a round robot turning in place never collides), for at most MAX_HELD_TURN_RAD. The rule first stood aside there,
and on gen1000009 (traced, averse:0.1, env seed 4000) that was a dither of its own: the check admitted the way-round
candidates (turning right) only at some headings, the shortest-way ones (turning left) at the others, so the robot
turned right, left, right ... on one spot for 5 s until the progress check took over, three times an episode.
"""
from __future__ import annotations

import math

IN_PLACE_SPEED = 0.05  # m/s: a command slower than this turns the robot on the spot (DWB's x_only_threshold)
MIN_TURN_RATE = 0.05  # rad/s: slower turns neither set nor break the commitment
# A held turn that has gone half round without a candidate the check admits in its direction is given up: the turn
# back is then the shorter way to the headings the other candidates wanted.
MAX_HELD_TURN_RAD = math.pi


def turns_against(actions, sign: float):
    """[...] True where the (v, omega) commands `actions` [..., 2] (numpy or torch) turn in place against `sign`."""
    return (abs(actions[..., 0]) < IN_PLACE_SPEED) & (actions[..., 1] * sign < -MIN_TURN_RATE)


class TurnCommitment:
    """One robot's in-place turn direction: +1 (left), -1 (right) or 0 (free), where the robot was when it began, and
    how far it has turned the held way since."""

    def __init__(self):
        self.release()

    def release(self) -> None:
        self.sign, self.anchor, self.turned, self.yaw = 0.0, None, 0.0, None

    def current(self, state, reset_m: float) -> float:
        """The sign to hold for the robot at state [x, y, sin, cos, ...] this tick: released once the robot is `reset_m`
        from where it began turning (0 = the rule is off), or has turned MAX_HELD_TURN_RAD the held way."""
        if self.sign != 0.0:
            yaw = math.atan2(float(state[2]), float(state[3]))
            if self.yaw is not None:
                self.turned += max(0.0, self.sign * math.remainder(yaw - self.yaw, 2 * math.pi))
            self.yaw = yaw
        if reset_m <= 0:
            self.release()
        elif self.anchor is not None and (math.hypot(float(state[0]) - self.anchor[0], float(state[1]) - self.anchor[1])
                                          >= reset_m or self.turned >= MAX_HELD_TURN_RAD):
            self.release()
        return self.sign

    def executed(self, state, v: float, omega: float, reset_m: float) -> None:
        """The robot at state was sent (v, omega): an in-place turn with no direction held sets one (unless off)."""
        if reset_m > 0 and self.sign == 0.0 and abs(v) < IN_PLACE_SPEED and abs(omega) > MIN_TURN_RATE:
            self.sign, self.anchor = math.copysign(1.0, omega), (float(state[0]), float(state[1]))
            self.turned, self.yaw = 0.0, math.atan2(float(state[2]), float(state[3]))
