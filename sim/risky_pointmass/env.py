"""RiskyPointMassEnv: a point in the unit square must reach (0.1, 0.1) past a risky disc.

A port of CODAC's `env/risky_pointmass.py` (github.com/JasonMa2016/CODAC) to gymnasium, rule by
rule, including the places where that code differs from a casual reading of the paper:

- observation [x, y, goal_x, goal_y] (float32), all in [0, 1]; the goal is fixed at (0.1, 0.1);
- action: the position change, each axis clipped to [-0.1, 0.1]; the new state is clipped to [0, 1];
- reward, the risk draw and termination all look at the state the step STARTS from (CODAC
  computes them before applying the action): reward = -|pos - goal| - 0.1; if pos is inside the
  disc of radius 0.3 at (0.5, 0.5) (boundary included), the penalty `risk_penalty` strikes when a
  uniform draw u > `risk_prob`, i.e. with probability 1 - risk_prob (0.1 at the paper's
  risk_prob = 0.9, risk_penalty = 50, our defaults); terminated when |pos - goal| < 0.05, so the
  episode ends one step after the point arrived;
- truncated after 100 steps (CODAC's max_path_length for this env);
- starts: uniform in [0.1, 0.9]^2, redrawn while inside the disc (CODAC's training and data
  collection); with reset(options={"eval": True}) (0.85, 0.85) + U(-0.05, 0) per axis (CODAC's
  `reset(eval=True)`). CODAC's released evaluation loop in fact calls reset() without eval=True,
  so its printed numbers come from the training start distribution; the issue's protocol, and ours,
  is the eval start.

Our one change: the risk draw uses the env's seeded `np_random` (CODAC calls the global
`np.random`), so an episode is reproducible from its reset seed. `info` carries `risk_event`
(the penalty struck: CODAC's `cost`), `in_risky_region` (the step started inside the disc),
`collision` (always False: there is nothing to collide with; kept so risky_nav's dataset and
rollout code apply unchanged), `risk_penalty` and `distance_to_goal` (of the state the step started from).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GOAL = (0.1, 0.1)
DISC_CENTER = (0.5, 0.5)
DISC_RADIUS = 0.3
MAX_STEP = 0.1          # per axis, per step
GOAL_TOLERANCE = 0.05
STEP_COST = 0.1
MAX_EPISODE_STEPS = 100
TRAIN_START_RANGE = (0.1, 0.9)
EVAL_START = (0.85, 0.85)
EVAL_START_JITTER = (-0.05, 0.0)


def in_disc(xy: np.ndarray) -> np.ndarray:
    """True where the point [..., 2] lies inside the risky disc, boundary included (CODAC's `not is_safe`)."""
    xy = np.asarray(xy, dtype=np.float64)
    return (xy[..., 0] - DISC_CENTER[0]) ** 2 + (xy[..., 1] - DISC_CENTER[1]) ** 2 <= DISC_RADIUS ** 2


class RiskyPointMassEnv(gym.Env):
    """`gymnasium.make("RiskyPointMass-v0", risk_prob=0.9, risk_penalty=50.0)`.

    risk_prob follows CODAC's naming: the probability that NO penalty strikes on a step inside
    the disc. reset(options=...) accepts `eval` (True: the evaluation start) or `start` ([x, y]).
    """

    metadata = {"render_modes": []}

    def __init__(self, risk_prob: float = 0.9, risk_penalty: float = 50.0):
        if not 0.0 <= risk_prob <= 1.0:
            raise ValueError(f"risk_prob must be a probability in [0, 1], got {risk_prob}")
        if not np.isfinite(risk_penalty) or risk_penalty < 0:
            raise ValueError(f"risk_penalty must be a finite number >= 0, got {risk_penalty}")
        self.risk_prob = float(risk_prob)
        self.risk_penalty = float(risk_penalty)
        self.max_episode_steps = MAX_EPISODE_STEPS
        self.goal = np.array(GOAL, dtype=np.float64)
        self.action_space = spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        self.observation_space = spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._steps = 0

    @property
    def penalty_probability(self) -> float:
        """Probability that the penalty strikes on a step that starts inside the disc."""
        return 1.0 - self.risk_prob

    def position(self) -> np.ndarray:
        return self._pos.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"eval", "start"}
        if unknown:
            raise ValueError(f"reset: unknown option(s) {sorted(unknown)}; known: 'eval', 'start'")
        if options.get("start") is not None:
            start = np.asarray(options["start"], dtype=np.float64)
            if start.shape != (2,) or not np.all(np.isfinite(start)) or np.any(start < 0) or np.any(start > 1):
                raise ValueError(f"reset: option 'start' must be [x, y] in [0, 1], got {options['start']!r}")
            self._pos = start.copy()
        elif options.get("eval"):
            self._pos = np.array(EVAL_START) + self.np_random.uniform(*EVAL_START_JITTER, size=2)
        else:
            while True:
                self._pos = self.np_random.uniform(*TRAIN_START_RANGE, size=2)
                if not in_disc(self._pos):
                    break
        self._steps = 0
        return self._observation(), {"distance_to_goal": self._distance()}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise ValueError(f"step: action must be 2 finite numbers [dx, dy], got {action!r}")
        action = np.clip(action, -MAX_STEP, MAX_STEP)
        # CODAC scores the state the step starts from, then moves.
        distance = self._distance()
        reward = -distance - STEP_COST
        inside = bool(in_disc(self._pos))
        risk_event = inside and self.np_random.uniform() > self.risk_prob
        if risk_event:
            reward -= self.risk_penalty
        terminated = distance < GOAL_TOLERANCE
        self._pos = np.clip(self._pos + action, 0.0, 1.0)
        self._steps += 1
        truncated = not terminated and self._steps >= self.max_episode_steps
        info = {"risk_event": risk_event, "in_risky_region": inside, "collision": False,
                "risk_penalty": self.risk_penalty if risk_event else 0.0, "distance_to_goal": distance}
        return self._observation(), float(reward), bool(terminated), bool(truncated), info

    def _distance(self) -> float:
        return float(np.linalg.norm(self.goal - self._pos))

    def _observation(self) -> np.ndarray:
        return np.concatenate([self._pos, self.goal]).astype(np.float32)
