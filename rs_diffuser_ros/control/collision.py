"""The hard collision check: a plan or a command that the costmap says hits something is never executed.

As Nav2's controllers check their trajectories against the costmap's inscribed (lethal) radius,
every candidate plan is checked over its whole horizon (its points and the midpoints between
them), and so is the command the robot would execute, rolled forward as a unicycle for
`collision_lookahead_s` from the robot's measured velocity under its acceleration limits (as Nav2 DWB
rolls its trajectories out under acc_lim_x / acc_lim_theta). Rolled out as if the robot took the command
at once, a command to turn away from a wall passed the check while the robot, still turning towards it
at 1.9 rad/s (4 rad/s^2 to reverse), drove on into it (test map gen1000006, H200, env seed 110131:
6 steps touching; docs/method_choices.md). A point collides when its clearance (distance to the nearest
occupied or unknown cell, or the map's edge) is below the robot's radius plus a margin, unless it is no
closer than where the robot already is: a robot that starts touching a wall may still move away.

The clearance grid is computed once per costmap (a windowed exact Euclidean distance over cell
centres, minus half a cell so a point anywhere inside a free cell is never too optimistic) and
kept on the planner's device; a check is then one gather over all points of all candidates of
all robots at once (torch, on that device: a GPU checks 1024 robots x 32 candidates in a few ms).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from rs_diffuser_ros.core.clearance_rule import distance_to_blocked_cell
from rs_diffuser_ros.core.config import DATA_PERIOD_S

CHECK_STEP_S = 0.05  # rollout resolution: at 1 m/s, 5 cm, one costmap cell
TOLERANCE_M = 1e-6


class ClearanceMap:
    def __init__(self, grid, unknown_is_obstacle: bool, device="cpu", max_distance: float = 1.0):
        data = np.asarray(grid.data)
        self.resolution, self.origin_x, self.origin_y = float(grid.resolution), float(grid.origin_x), float(grid.origin_y)
        blocked = (data >= 50) | ((data < 0) & unknown_is_obstacle)
        self.clearance = torch.as_tensor(_clearance(blocked, self.resolution, max_distance), device=device)

    def at(self, xy: Tensor) -> Tensor:
        """Clearance (m) at world points xy [..., 2]; 0 off the map or at a non-finite point."""
        h, w = self.clearance.shape
        col = torch.floor((xy[..., 0] - self.origin_x) / self.resolution)
        row = torch.floor((xy[..., 1] - self.origin_y) / self.resolution)
        inside = torch.isfinite(col) & torch.isfinite(row) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        index = torch.where(inside, row * w + col, torch.zeros_like(col)).long()
        return torch.where(inside, self.clearance.flatten()[index], torch.zeros((), device=xy.device))

    def colliding(self, paths: Tensor, start: Tensor, radius: float) -> Tensor:
        """paths [..., P, 2] from start [..., 2] -> [...] True where some point (or midpoint) comes closer than
        `radius` to an obstacle and closer than the start already is."""
        points = torch.cat([paths, 0.5 * (paths[..., 1:, :] + paths[..., :-1, :])], -2)
        clear = self.at(points)
        start_clear = self.at(start)[..., None]
        return ((clear < radius) & (clear < start_clear - TOLERANCE_M)).any(-1)

    def freest_heading(self, xy: np.ndarray, look_m: float = 0.4, directions: int = 16) -> float:
        """The heading (rad) from xy towards the most clearance `look_m` away."""
        angles = torch.arange(directions, device=self.clearance.device) * (2 * math.pi / directions)
        probes = torch.as_tensor(xy[:2], dtype=torch.float32, device=self.clearance.device)[None] + look_m * torch.stack(
            [torch.cos(angles), torch.sin(angles)], -1)
        return float(angles[int(torch.argmax(self.at(probes)))])


def unicycle_rollout(states: Tensor, actions: Tensor, duration_s: float,
                     accel: tuple[float, float] | None = None) -> Tensor:
    """Positions [B, K, S, 2] of unicycles from states [B, 6] ([x, y, sin, cos, v, omega]) each holding actions
    [B, K, 2] (v, omega) for duration_s, every CHECK_STEP_S. accel: the robot's limits (m/s^2, rad/s^2; 0 = none):
    its v and omega approach the command from the state's own under them; None: the command at once."""
    steps = max(int(math.ceil(duration_s / CHECK_STEP_S)), 1)
    if accel is not None and any(limit > 0 for limit in accel):
        return _limited_rollout(states, actions, duration_s / steps, steps, accel)
    t = torch.arange(1, steps + 1, device=states.device, dtype=states.dtype) * (duration_s / steps)  # [S]
    x0, y0 = states[:, 0, None, None], states[:, 1, None, None]  # [B, 1, 1]
    yaw0 = torch.atan2(states[:, 2], states[:, 3])[:, None, None]
    v, omega = actions[..., 0:1], actions[..., 1:2]  # [B, K, 1]
    yaw = yaw0 + omega * t
    # Exact arcs for omega != 0, straight lines for omega = 0.
    turning = omega.abs() > 1e-6
    safe_omega = torch.where(turning, omega, torch.ones_like(omega))
    dx = torch.where(turning, v / safe_omega * (torch.sin(yaw) - torch.sin(yaw0)), v * t * torch.cos(yaw0))
    dy = torch.where(turning, -v / safe_omega * (torch.cos(yaw) - torch.cos(yaw0)), v * t * torch.sin(yaw0))
    return torch.stack([x0 + dx, y0 + dy], -1)


def _limited_rollout(states: Tensor, actions: Tensor, dt: float, steps: int, accel: tuple[float, float],
                     brake_from: int | None = None) -> Tensor:
    """unicycle_rollout under acceleration limits: risky_nav's integration (the velocities step towards the command,
    the heading at the step's midpoint), at dt; from step `brake_from` on, the speed commanded is 0
    (stopping_rollout)."""
    shape = actions.shape[:-1]  # [B, K]
    x, y = states[:, 0, None].expand(shape), states[:, 1, None].expand(shape)
    yaw = torch.atan2(states[:, 2], states[:, 3])[:, None].expand(shape)
    v, omega = states[:, 4, None].expand(shape), states[:, 5, None].expand(shape)
    dv, domega = ((limit * dt if limit > 0 else math.inf) for limit in accel)
    out = []
    for step in range(steps):
        v_cmd = actions[..., 0] if brake_from is None or step < brake_from else torch.zeros_like(v)
        v = v + (v_cmd - v).clamp(-dv, dv)
        omega = omega + (actions[..., 1] - omega).clamp(-domega, domega)
        heading = yaw + 0.5 * omega * dt
        x, y = x + v * dt * torch.cos(heading), y + v * dt * torch.sin(heading)
        yaw = yaw + omega * dt
        out.append(torch.stack([x, y], -1))
    return torch.stack(out, -2)


def stopping_rollout(states: Tensor, actions: Tensor, hold_s: float, duration_s: float,
                     accel: tuple[float, float]) -> Tensor:
    """Positions [B, K, S, 2] of unicycles from states [B, 6] each holding actions [B, K, 2] for hold_s and then
    commanded to stand (speed 0, turn rate held) until duration_s, every CHECK_STEP_S, under the acceleration limits:
    where the robot would come to a stand if the command after this one stopped it."""
    steps = max(int(math.ceil(duration_s / CHECK_STEP_S)), 1)
    dt = duration_s / steps
    return _limited_rollout(states, actions, dt, steps, accel, brake_from=int(round(hold_s / dt)))


def plan_step_s(plan_stride: int) -> float:
    """Seconds between consecutive states of a plan from a model with this model.plan_stride."""
    return plan_stride * DATA_PERIOD_S


def safe_candidates(clearance: ClearanceMap, states: Tensor, plans_xy: Tensor, commands: Tensor, radius: float,
                    lookahead_s: float, horizon_s: float, step_s: float = DATA_PERIOD_S,
                    accel: tuple[float, float] | None = None, stop: tuple[float, float] | None = None) -> Tensor:
    """[B, K] True where candidate k of robot b is safe: its plan [B, K, H, 2] over its first horizon_s and its
    command [B, K, 2] held for lookahead_s from states [B, 6] (under the acceleration limits `accel`:
    unicycle_rollout) both keep `radius` of clearance (or do not lose any); step_s: seconds between plan states
    (plan_step_s). stop (hold_s, duration_s; ControllerSettings.stop_rollout): the command must also leave the robot a
    stand that keeps the clearance (stopping_rollout). Tensors on the clearance map's device."""
    plans_xy = plans_xy[:, :, :int(math.ceil(horizon_s / step_s - 1e-9)) + 1]
    start = states[:, None, :2]  # [B, 1, 2]
    rollouts = [unicycle_rollout(states, commands, lookahead_s, accel)]
    if stop is not None:
        # The held command's lookahead covers a stand from the top speed only for a robot that brakes hard enough
        # (0.33 m from 1 m/s at the layouts' 1.5 m/s^2, against 0.5 s held); one that brakes more gently stops
        # farther on, and a command that leaves it no stand clear of walls must not run.
        rollouts.append(stopping_rollout(states, commands, *stop, accel or (0.0, 0.0)))
    hit = clearance.colliding(plans_xy, start, radius)
    for rollout in rollouts:
        from_start = torch.cat([start[:, :, None].expand(*rollout.shape[:2], 1, 2), rollout], 2)
        hit = hit | clearance.colliding(from_start, start, radius)
    return ~hit


def _clearance(blocked: np.ndarray, resolution: float, max_distance: float) -> np.ndarray:
    """Distance (m) from each cell to the nearest blocked cell or the map's edge (core/clearance_rule.py), capped at
    max_distance."""
    h, w = blocked.shape
    reach = int(math.ceil(max_distance / resolution)) + 1
    padded = np.pad(blocked, reach, constant_values=True)  # beyond the map counts as blocked
    clearance = np.full((h, w), max_distance, dtype=np.float32)
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            d = distance_to_blocked_cell(dx, dy, resolution)
            if d >= max_distance:
                continue
            shifted = padded[reach + dy:reach + dy + h, reach + dx:reach + dx + w]
            np.minimum(clearance, np.where(shifted, max(d, 0.0), max_distance), out=clearance)
    return clearance
