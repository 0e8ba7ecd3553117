"""Route candidates: the way round risk and the shortest way, each driven as the training data's route follower
drives, for some candidates to be denoised through (Diffuser's conditioning by inpainting).

Why: the critic prefers staying out of a risky region wherever it is offered a plan that does, but the denoiser's
staying-out proposals on the short cut's approach head for the region and stop short of it; from a few seconds
before it no candidate turns for the way round (docs/method_choices.md, "Route candidates"). So a few candidates of
each replan have their positions held to a route follower's rollout from the robot's state: pure pursuit, as the
scripted `detour` and `shortcut` policies that recorded the data drive. Some follow the way round risk, some the
shortest way (PlanningMap.route_steps: goal distances at the collision check's clearance from walls, the first with
every metre inside a risky region counted ROUTE_RISK_WEIGHT times and one near it SAFE_DETOUR_WEIGHT times, so it goes
round wherever a way round exists), so the critic weighs like against like. The
denoiser fills in the rest (heading, speed, turn rate); the critic scores these candidates like every other one, so
whether the robot goes round is still its CVaR's choice.

What did not work (measured on gen0009003, docs/method_choices.md): one far waypoint, or one every 0.8 s (the
denoiser's other states kept its own route and cut corners through walls); positions at a steady pace along the
route (a robot facing away or still moving the other way cannot follow them: it stalled at walls); releasing the
last denoising step (the denoiser went back to its own route); the way round alone (its steady follower
out-scored the denoiser's own plans at alpha 1 too).

Everything here is tensor work with a fixed number of iterations (no host sync), so it runs inside the replan
program and its captured CUDA graph.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .map_input import grid_cells

# The route follower, as risky_nav.policies.WaypointPolicy drives (the data's detour): steer at a point LOOKAHEAD_M
# along the route, omega = HEADING_GAIN x heading error, stop to turn beyond TURN_IN_PLACE_RAD, brake on arrival.
LOOKAHEAD_M = 0.5
HEADING_GAIN = 2.5
TURN_IN_PLACE_RAD = 1.0
GOAL_SLOWDOWN = 1.0  # m/s of speed allowed per metre of route left
# Its acceleration limits: the robot's the data were recorded with (risky_nav's layouts; a test holds them equal).
# Only the route candidates' pace depends on them.
ROUTE_MAX_ACCEL = 1.5  # m/s^2
ROUTE_MAX_ALPHA = 4.0  # rad/s^2


def walk_route(next_cell: Tensor, step_m: Tensor, width: int, origin: Tensor, resolution: float, starts: Tensor,
               length_m: float) -> tuple[Tensor, Tensor]:
    """Walk down a field (map_input.downhill_steps' next_cell and step_m [B, h * w], rows `width` cells wide; cell (0, 0)'s
    lower-left corner at world origin [2]) from world points starts [B, 2] for `length_m` metres or until the walk
    ends. -> (route [B, S + 1, 2]: the cell centres passed, the start's first, the last repeated once the walk ended;
    along [B, S + 1]: metres walked to each)."""
    b, cells = next_cell.shape
    rows_cols = grid_cells(starts, origin, resolution)
    cell = (rows_cols[:, 0].clamp(0, cells // width - 1) * width + rows_cols[:, 1].clamp(0, width - 1))[:, None]
    # Three ops a cell, on [B, 1] columns (no reshaping in the loop): the walk is a replan's longest chain of small
    # ops. The metres are summed in walking order: the follower's look-ahead compares them for ties (0.5 m is five
    # straight steps), so another summation order moves its rollouts by centimetres.
    visited, walked = [cell], [torch.zeros(b, 1, device=next_cell.device)]
    for _ in range(math.ceil(length_m / resolution)):
        walked.append(walked[-1] + step_m.gather(1, cell))
        cell = next_cell.gather(1, cell)
        visited.append(cell)
    visited, along = torch.cat(visited, 1), torch.cat(walked, 1)
    centres = torch.stack([visited % width, visited // width], -1).float() + 0.5
    return centres * resolution + origin, along


class FollowerRollout(NamedTuple):
    positions: Tensor  # [B, steps, 2] world positions, one every step_s seconds
    first_command: Tensor  # [B, 2] (v, omega) the follower commands at the start: what drives the robot along them


def follow_route(route: Tensor, along: Tensor, states: Tensor, steps: int, step_s: float, max_v: float,
                 max_omega: float, max_accel: float, max_alpha: float) -> FollowerRollout:
    """A unicycle from states [B, >= 6] ([x, y, sin, cos, v, omega]) following route [B, S, 2] (walk_route, `along`
    its metres) by pure pursuit, one state every step_s seconds, its speed and turn rate approaching the commanded
    ones under max_accel / max_alpha. The route's last point is where it brakes to a stop."""
    b, s = route.shape[:2]
    dev = route.device
    batch = torch.arange(b, device=dev)
    x, y = states[:, 0], states[:, 1]
    yaw = torch.atan2(states[:, 2], states[:, 3])
    v, omega = states[:, 4], states[:, 5]
    passed = torch.zeros(b, dtype=torch.long, device=dev)  # the route point the robot is nearest, never going back
    window = torch.arange(8, device=dev)  # the next points a step can reach (8 points: >= 0.8 m)
    # What depends only on the point passed, for every point at once (a step then looks it up: the follower's loop is
    # a replan's most numerous small ops on a CPU): the last point within the look-ahead, and the speed the metres of
    # route left allow.
    ahead = along + LOOKAHEAD_M  # [B, S]
    target_of = (along[:, None, :] <= ahead[:, :, None]).sum(2).clamp(1, s) - 1  # [B, S]
    targets = route.gather(1, target_of[..., None].expand(-1, -1, 2))  # [B, S, 2]
    speed_left = GOAL_SLOWDOWN * (along[:, -1:] - along) + 0.1  # [B, S]
    out, first = [], None
    for _ in range(steps):
        near = (passed[:, None] + window).clamp(max=s - 1)  # [B, 8]
        gap = (route[batch[:, None], near] - torch.stack([x, y], -1)[:, None]).norm(dim=-1)
        passed = near[batch, gap.argmin(1)]
        target = targets[batch, passed]
        error = torch.remainder(torch.atan2(target[:, 1] - y, target[:, 0] - x) - yaw + math.pi, 2 * math.pi) - math.pi
        omega_cmd = (HEADING_GAIN * error).clamp(-max_omega, max_omega)
        v_cmd = torch.where(error.abs() > TURN_IN_PLACE_RAD, torch.zeros_like(v), max_v * torch.cos(error))
        v_cmd = torch.minimum(v_cmd, speed_left[batch, passed])
        if first is None:
            first = torch.stack([v_cmd, omega_cmd], -1)
        v = v + (v_cmd - v).clamp(-max_accel * step_s, max_accel * step_s)
        omega = omega + (omega_cmd - omega).clamp(-max_alpha * step_s, max_alpha * step_s)
        x = x + v * torch.cos(yaw) * step_s
        y = y + v * torch.sin(yaw) * step_s
        yaw = yaw + omega * step_s
        out.append(torch.stack([x, y], -1))
    return FollowerRollout(torch.stack(out, 1), first)
