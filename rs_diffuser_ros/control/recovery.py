"""When every candidate plan collides: one checked, slow step down the goal's free-space distance.

A model can propose only colliding plans from a state its training data never reached (issue 15's general model,
hugging the upper block in the default layout's top corridor, over DDS). Turning in place towards free space alone
left the robot facing the same plans until the time limit. Like Nav2's recovery behaviours (spin, back up, drive on
heading), this is simple and does not pretend to plan: a few (v, omega) primitives are held for the collision
check's lookahead, rolled out as unicycles, checked by the same rule as the plans (`ClearanceMap.colliding`), and
the safe one whose end lies closest to the goal along free space (the risk-weighted goal distance the map-conditioned
models read, so a recovery step does not cut through a risky region it can go round) runs for one tick. The model
replans on the next; the risk decision stays the critic's whenever it has a safe plan to decide on.

Over DDS the steps, greedy for the goal, pass corners at exactly the check's clearance. Planned from odometry that
had waited for the tick they touched the upper block in 3 of 20 runs; a step keeping 0.1 m more clearance touched
less (1 of 6) but cost the per-layout models most of what the step gave them at their narrow doors (52.5 % success
instead of 92.5 % on risk_near_goal). Planned from the odometry moved on by its age (odom_prediction.py), the steps
keep the check's own clearance and touched nothing in 20 of 20 runs, 9 of them with recovery steps.

Where no forward step makes progress (the way on lies behind the robot), `recovery_heading` gives the heading to
turn to in place, so that the next tick's steps can follow the way. A robot still moving does not turn in place: it
brakes, and `braking_turn` picks the turn rate it brakes with so that it comes to a stand clear of walls.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from rs_diffuser_ros.control.collision import ClearanceMap, stopping_rollout, unicycle_rollout
from rs_diffuser_ros.core.map_input import PlanningMap

SPEEDS = (0.15, 0.3)  # m/s: slow, so a tick moves 1.5-3 cm and the model soon has a new state to plan from
TURN_RATES = (-1.0, -0.5, 0.0, 0.5, 1.0)  # rad/s
MIN_PROGRESS_M = 0.01  # a step must bring the robot at least this much closer (along free space) to count
HEADINGS = 16  # the directions a turn in place may face


def primitives(max_speed: float, max_omega: float) -> np.ndarray:
    """The (v, omega) commands a recovery chooses from [P, 2], within the controller's limits."""
    return np.array([(min(v, max_speed), float(np.clip(w, -max_omega, max_omega)))
                     for v in SPEEDS for w in TURN_RATES], dtype=np.float32)


def field_at(field: torch.Tensor, planning_map: PlanningMap, xy: torch.Tensor) -> torch.Tensor:
    """The goal distance field [h, w] at world points xy [..., 2]; +inf off the map."""
    rc, inside = (t.to(xy.device) for t in planning_map.cells_on_map(xy))
    values = field[rc[..., 0], rc[..., 1]]
    return torch.where(inside, values, torch.full_like(values, float("inf")))


def _goal_field(goal: np.ndarray, planning_map: PlanningMap, device) -> torch.Tensor:
    """The goal distance field [h, w] a recovery follows: the safe (risk-weighted) one where the map has it."""
    fields = planning_map.distance_fields(torch.as_tensor(goal[None, :2], dtype=torch.float32, device=planning_map.device))
    return fields[0, 1 if planning_map.safe_distance else 0].to(device)


def _best_safe(states: torch.Tensor, commands: torch.Tensor, field: torch.Tensor, clearance: ClearanceMap,
               planning_map: PlanningMap, radius: float, lookahead_s: float,
               accel: tuple[float, float] | None) -> int | None:
    """Of unicycles states [P, 6] each holding commands [P, 2] for lookahead_s (from the states' velocities under the
    acceleration limits `accel`): the index of the safe one ending lowest on `field`, or None when none ends
    MIN_PROGRESS_M below where the robot stands."""
    rollouts = unicycle_rollout(states, commands[:, None], lookahead_s, accel)[:, 0]  # [P, S, 2]
    paths = torch.cat([states[:, None, :2], rollouts], 1)
    safe = ~clearance.colliding(paths, states[:, :2], radius)
    now = field_at(field, planning_map, states[0, :2])
    after = field_at(field, planning_map, rollouts[:, -1])
    score = torch.where(safe & torch.isfinite(after), after, torch.full_like(after, float("inf")))
    best = int(torch.argmin(score))
    return best if bool(score[best] <= now - MIN_PROGRESS_M) else None


def recovery_step(state: np.ndarray, goal: np.ndarray, clearance: ClearanceMap, planning_map: PlanningMap,
                  radius: float, lookahead_s: float, max_speed: float, max_omega: float,
                  accel: tuple[float, float] | None = None) -> tuple[float, float] | None:
    """(v, omega) of the safe primitive (keeping `radius` of clearance, or not losing any) ending closest
    to the goal along free space, or None when no safe primitive brings the robot MIN_PROGRESS_M closer (the goal
    unreachable, or every way forward blocked). accel: the robot's limits, the primitives rolled out from its measured
    velocity under them (a robot at 0.75 m/s told to step at 0.3 covers more than 0.3 m/s would)."""
    if max_speed <= 0.0:
        return None
    device = clearance.clearance.device
    field = _goal_field(goal, planning_map, device)
    commands = torch.as_tensor(primitives(max_speed, max_omega), device=device)
    states = torch.as_tensor(np.asarray(state, np.float32)[None], device=device).expand(len(commands), -1)
    best = _best_safe(states, commands, field, clearance, planning_map, radius, lookahead_s, accel)
    return None if best is None else tuple(commands[best].tolist())


def recovery_heading(state: np.ndarray, goal: np.ndarray, clearance: ClearanceMap, planning_map: PlanningMap,
                     radius: float, lookahead_s: float, accel: tuple[float, float] | None = None) -> float | None:
    """Where no step forward makes progress: the heading (rad) of the straight step (SPEEDS' fastest, held for
    lookahead_s, checked as the steps are) that ends lowest on the goal's free-space distance, or None when no
    heading brings the robot MIN_PROGRESS_M closer. Turning in place to it is safe for a round robot, and the next
    tick's steps (and the model's plans) start facing the way to go. Turning to the freest direction instead left a
    robot facing a wall corner with the way out behind it: on val map gen0009008 it stood still in a risky region
    for 45 s, every candidate and step refused, until the time limit."""
    device = clearance.clearance.device
    field = _goal_field(goal, planning_map, device)
    angles = torch.arange(HEADINGS, device=device) * (2 * math.pi / HEADINGS)
    states = torch.as_tensor(np.asarray(state, np.float32)[None], device=device).repeat(HEADINGS, 1)
    states[:, 2], states[:, 3] = torch.sin(angles), torch.cos(angles)
    states[:, 4:6] = 0.0  # facing it after a turn in place: standing, the step starting from rest
    commands = torch.tensor([[SPEEDS[-1], 0.0]], device=device).expand(HEADINGS, 2)
    best = _best_safe(states, commands, field, clearance, planning_map, radius, lookahead_s, accel)
    return None if best is None else float(angles[best])


BRAKING_TURNS = (-1.0, -0.5, 0.0, 0.5, 1.0)  # x max_omega: the turn rates a braking robot may hold
MOVING_MPS = 0.05  # below this speed a robot turns in place: a round robot turning on the spot hits nothing


def braking_turn(state: np.ndarray, omega: float, clearance: ClearanceMap, radius: float, braking_s: float,
                 accel: tuple[float, float], max_omega: float) -> float:
    """The turn rate a robot told to stop (speed 0) should hold while it brakes: `omega` (the turn asked for) where the
    robot stands still or its stop from there keeps `radius` of clearance (or loses none); else, of BRAKING_TURNS, the
    one nearest omega whose stop does; else the one whose stop keeps the most clearance. A robot still at 0.93 m/s told
    to turn in place the other way slid 8 steps into a wall (test map gen1000034, H200, env seed 141022)."""
    if abs(float(state[4])) < MOVING_MPS or braking_s <= 0:
        return omega
    device = clearance.clearance.device
    turns = torch.tensor([omega] + [f * max_omega for f in BRAKING_TURNS], dtype=torch.float32, device=device)
    commands = torch.stack([torch.zeros_like(turns), turns], -1)[None]  # [1, T, 2]
    states = torch.as_tensor(np.asarray(state, np.float32)[None], device=device)
    stops = stopping_rollout(states, commands, 0.0, braking_s, accel)[0]  # [T, S, 2]
    paths = torch.cat([states[:, None, :2].expand(len(turns), 1, 2), stops], 1)
    safe = ~clearance.colliding(paths, states[:, :2].expand(len(turns), 2), radius)
    if bool(safe[0]):
        return omega
    if bool(safe.any()):
        return float(turns[torch.where(safe, (turns - omega).abs(), torch.full_like(turns, math.inf)).argmin()])
    return float(turns[clearance.at(paths).min(-1).values.argmax()])
