"""What a map-conditioned model sees of the map: an egocentric patch of map layers around the robot.

Map layers (`MapLayers`, FEATURE_RESOLUTION cells, world-aligned; built once per costmap / risk map):
  obstacle  the inflated costmap cost in [0, 1] (Costmap.from_occupancy), max-pooled to the feature grid
  risk      1 inside a risky region (hazard level > 0), else 0
  hazard    log(1 + level) / log(101) of the risk layer's hazard level (0..100 = 100 p C, docs/ros.md)
  valid     1 on the map; beyond it the patch reads wall and no risk
  severity  the risk layer's severity level / 100 (the size of one event, 0..100 = C / 25, docs/ros.md), 0 outside risky
            cells; where no severity layer is given (or a risky cell's reads 0 or unknown), 1, the largest the scale
            holds
Per goal, `goal_distance` is the free-space (geodesic) distance to the goal over the cells a robot's centre may
occupy (those whose every point keeps PASSABLE_CLEARANCE_M from walls, the cells that keep it only at their centre
reading a neighbour's distance and a step; or for a model trained before that rule existed, those not within a
cell of one: model.map_passable_clearance_m says which): risk ignored (the shortest way round walls), and, for a
model with the `safe_distance` channel, with every metre inside a risky region counted SAFE_DETOUR_WEIGHT times (the
way round risk, where one exists). Both are routes, not decisions: which one a plan takes is decided by the critic's
CVaR. One field pair per goal, computed when the goal or the map changes, never per denoising step.

A patch (`patches`) is PATCH_CHANNELS x P x P cells centred on the robot, world-aligned like the plan
frame, so a plan position (metres from the robot) maps straight into it (`sample_along`). The goal
distance channel is relative to the robot's own, in patch half-widths: it says which way is downhill.
With the safe distance come two route channels in metres (ROUTE_SCALE_M), not relative: `route_length`,
the shortest way to the goal from each cell, and `detour`, how much longer the way round risk is
(safe minus plain distance). A return-to-go scales with the first, and whether a short cut through risk
is worth its tail depends on the second; relative channels lose both, so a critic reading only them
cannot tell a 1 m detour from a 10 m one (docs/method_choices.md, "Map conditioning").
A model with `map_route_risk` reads an eighth channel, `route_risk`: the hazard met along the plain shortest
route from each cell to the goal, the sum of (hazard level / 100) x metres over its cells (proportional to the
route's expected risk penalty, 0 on a route that meets none). Where the risk ahead lies beyond the patch, it is
the only thing that says how dangerous the short cut is; how that turns into a tail stays the critic's to learn
(docs/method_choices.md, "What lies ahead").
A model with `map_severity` reads two more: `severity`, the severity layer at each cell, and `route_severity`, the
largest severity met along the plain shortest route from each cell to the goal (0 on a route that meets none). The
hazard level is p x C, the expected penalty a step: it sets a crossing's mean but not its tail, which C sets (a rare
large event and a frequent small one read alike); a critic reading only it predicted the tail too light in proportion
to C, on its own training maps as on new ones; a critic given these channels did no better (docs/method_choices.md,
"The event's size, more event draws, longer training").
Nothing here knows absolute map coordinates beyond the lookup itself.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .clearance_rule import distance_to_blocked_cell
from .costmap import Costmap

FEATURE_RESOLUTION = 0.1  # metres per cell of the map layers and the goal distance field
MAP_INFLATION_M = 0.5  # the obstacle layer's inflation: part of what a model was trained to read, not a setting
LAYER_NAMES = ("obstacle", "risk", "hazard", "valid", "severity")
PATCH_CHANNELS = ("obstacle", "risk", "hazard", "goal_distance", "safe_distance", "route_length", "detour", "route_risk",
                  "severity", "route_severity")
BASE_CHANNELS = 4  # a model without the safe_distance channel reads the first four
SAFE_CHANNELS = 5  # ... with it, the first five; a model with the route channels the first seven ...
ROUTE_CHANNELS = 7  # ... one with the route risk the first eight ...
ROUTE_RISK_CHANNELS = 8  # ... and one with the severity all ten
# The patch channels so many goal distance fields give: plain (1), safe (2), route risk (3), route severity (4)
_CHANNELS_OF = {1: BASE_CHANNELS, 2: ROUTE_CHANNELS, 3: ROUTE_RISK_CHANNELS, 4: len(PATCH_CHANNELS)}
SAFE_DETOUR_WEIGHT = 5.0  # a metre inside a risky region counts this much in the safe distance
UNREACHABLE = 1.0e4  # metres: the distance of cells the goal cannot be reached from
_DISTANCE_CLIP = 2.0  # patch half-widths: the relative distance channel lies in [-clip, clip]
ROUTE_SCALE_M = 10.0  # the route channels' unit: 1.0 = 10 m ...
_ROUTE_CLIP = 4.0  # ... clipped at 40 m (longer than any route the generated maps hold)
_ROUTE_RISK_CLIP = 4.0  # route_risk: 4 = a whole-scale hazard (level 100) over 4 m; beyond it reads the same
# The route candidates' way (route_candidates.py) keeps this far from walls: the layouts' 0.2 m radius, 0.05 m of margin
# (the collision check's until stop 42; it now demands 0.02 m) and 0.1 m for the corners its follower cuts; a metre at
# a wall costs 1 + ROUTE_WALL_WEIGHT x the obstacle cost, so it keeps to the middle of a passage. How far it keeps off
# risky regions where it can is the planner's route_risk_margin_m (core/config.py).
ROUTE_CLEARANCE_M = 0.35
ROUTE_RISK_WEIGHT = 100.0  # a metre inside a risky region counts this much on the way round (within the margin: 5)
ROUTE_WALL_WEIGHT = 1.0  # at 4 (until stop 43) narrow doors cost enough to send the ways round longer ones
# The goal distance runs over the cells whose centre is at least this far from a wall: the layouts' robot radius
# (0.2 m) and 0.05 m of margin (the collision check's default when the general models were trained; it now demands
# 0.02 m, and a test holds this at least the check's), so the distance never leads into a gap the check will not let
# the robot through (it did with the old one-cell rule: diagonal gaps of 0.35 m between two corners, dead ends the
# robots stuck in). Part of what a model reads: its model.map_passable_clearance_m says which rule it was trained
# with, LEGACY_PASSABLE (0) the one-cell rule of every model before f1.
PASSABLE_CLEARANCE_M = 0.25
LEGACY_PASSABLE = 0.0
NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]  # the 8 cells a route steps to


@dataclass
class MapLayers:
    layers: Tensor  # [N, 5, h, w] float (LAYER_NAMES), N maps padded to one size; row = y, column = x
    passable: Tensor  # [N, h, w] bool: cells a robot's centre may occupy (goal distance runs over them)
    resolution: float  # metres per cell (FEATURE_RESOLUTION)
    origin: Tensor  # [N, 2] world position of the lower-left corner of cell (0, 0) of each map
    passable_clearance_m: float = LEGACY_PASSABLE  # the rule `passable` was built by (from_grids)
    # [N, h, w] bool: cells whose centre keeps ROUTE_CLEARANCE_M from walls, measured as `passable` and the collision
    # check measure (route_distance's cells; from_grids(route_ways=True), as a PlanningMap is built); None: read off
    # the max-pooled obstacle cost instead (training maps, which never walk a way; maps made by hand)
    route_passable: Tensor | None = None
    # [N, h, w] bool: cells whose centre keeps the passable clearance but not every point (passable_clearance_m's
    # centre rule, as models were trained, less `passable`): a route never runs through one, but each reads the
    # distance of its passable neighbour plus the step (_distance_chunk), so a passage's fields are as wide as the
    # centre rule made them in training. None: no such cells (the legacy rule; maps made by hand)
    fringe: Tensor | None = None

    @classmethod
    def from_grids(cls, occupancy, resolution: float, origin_x: float, origin_y: float, hazard=None,
                   inflation_radius: float = MAP_INFLATION_M, unknown_is_obstacle: bool = True, device="cpu",
                   passable_clearance_m: float = LEGACY_PASSABLE, route_ways: bool = False,
                   severity=None) -> "MapLayers":
        """One map from an occupancy grid (int8 0..100, -1 unknown) and an optional hazard grid (0..100) of
        the same geometry (None: no risk layer), both in the nav_msgs/OccupancyGrid convention, and an optional
        severity grid (0..100) of that geometry too (None: every risky cell at the largest severity). The goal distance
        runs over the cells whose centre keeps `passable_clearance_m` from walls (a model's
        model.map_passable_clearance_m; LEGACY_PASSABLE: those not within one feature cell of a wall)."""
        occ = torch.as_tensor(np.asarray(occupancy), dtype=torch.float32, device=device)
        if occ.dim() != 2 or occ.numel() == 0:
            raise ValueError(f"occupancy must be a non-empty [height, width] grid, got shape {tuple(occ.shape)}")
        blocked = (occ >= 50) | ((occ < 0) & unknown_is_obstacle)
        cost = Costmap.from_occupancy(occupancy, resolution, origin_x, origin_y, inflation_radius,
                                      unknown_is_obstacle).cost.to(device)
        if hazard is None:
            level = torch.zeros_like(occ)
        else:
            level = torch.as_tensor(np.asarray(hazard), dtype=torch.float32, device=device)
            if level.shape != occ.shape:
                raise ValueError(f"hazard grid shape {tuple(level.shape)} differs from the occupancy grid's "
                                 f"{tuple(occ.shape)}: the risk layer must share the costmap's geometry")
            level = level.clamp(0, 100)  # unknown (-1) risk reads as none: the costmap decides what is unseen
        if severity is None:  # an event's size unknown: the largest the scale holds, where there is risk
            size = torch.full_like(level, 100.0)
        else:
            size = torch.as_tensor(np.asarray(severity), dtype=torch.float32, device=device)
            if size.shape != occ.shape:
                raise ValueError(f"severity grid shape {tuple(size.shape)} differs from the occupancy grid's "
                                 f"{tuple(occ.shape)}: the risk layers must share the costmap's geometry")
            # A risky cell whose severity reads 0 or unknown (-1) contradicts its hazard (p x C > 0): taken as unknown.
            size = torch.where(size > 0, size.clamp(max=100), torch.full_like(size, 100.0))
        size = torch.where(level > 0, size, torch.zeros_like(size)) / 100.0  # no risk, no event
        stacked = torch.stack([cost, (level > 0).float(), torch.log1p(level) / math.log(101.0), blocked.float(), size])
        grid = _to_feature_grid(stacked, resolution)  # max-pooled: conservative for walls and risk alike
        obstacle, risk, hazard_ch, blocked_fr, severity_ch = grid
        if passable_clearance_m == LEGACY_PASSABLE:  # not within a feature cell of a wall
            passable = ~(F.max_pool2d(blocked_fr[None, None], 3, stride=1, padding=1)[0, 0] > 0.5)
            fringe = None
        else:
            passable = _clear_of(blocked, resolution, obstacle.shape, passable_clearance_m, whole_cell=True)
            fringe = _clear_of(blocked, resolution, obstacle.shape, passable_clearance_m, whole_cell=False) & ~passable
        layers = torch.stack([obstacle, risk, hazard_ch, torch.ones_like(obstacle), severity_ch])[None]
        route_passable = _clear_of(blocked, resolution, obstacle.shape, ROUTE_CLEARANCE_M,
                                   whole_cell=False)[None] if route_ways else None
        return cls(layers, passable[None], FEATURE_RESOLUTION,
                   torch.tensor([[origin_x, origin_y]], dtype=torch.float32, device=device), float(passable_clearance_m),
                   route_passable, None if fringe is None else fringe[None])

    @classmethod
    def stack(cls, maps: list["MapLayers"]) -> "MapLayers":
        """Many maps in one tensor, each padded (top and right) with off-map cells to the largest size."""
        h = max(m.layers.shape[-2] for m in maps)
        w = max(m.layers.shape[-1] for m in maps)
        layers, passable, fringe = [], [], []
        for m in maps:
            pad = (0, w - m.layers.shape[-1], 0, h - m.layers.shape[-2])
            layers.append(F.pad(m.layers, pad))  # zeros: valid = 0, read as wall
            passable.append(F.pad(m.passable, pad, value=False))
            fringe.append(F.pad(torch.zeros_like(m.passable) if m.fringe is None else m.fringe, pad, value=False))
        rules = {m.passable_clearance_m for m in maps}
        if len(rules) > 1:
            raise ValueError(f"maps built with different passable clearances {sorted(rules)} cannot be stacked")
        return cls(torch.cat(layers), torch.cat(passable), maps[0].resolution, torch.cat([m.origin for m in maps]),
                   rules.pop(), fringe=torch.cat(fringe) if any(m.fringe is not None for m in maps) else None)

    def __len__(self) -> int:
        return self.layers.shape[0]

    def to(self, device) -> "MapLayers":
        return MapLayers(self.layers.to(device), self.passable.to(device), self.resolution, self.origin.to(device),
                         self.passable_clearance_m, None if self.route_passable is None else self.route_passable.to(device),
                         None if self.fringe is None else self.fringe.to(device))

    def cells_of(self, xy: Tensor, index: Tensor | None = None) -> Tensor:
        """(row, col) [..., 2] long of world points xy [..., 2] on map `index` (None: map 0)."""
        return grid_cells(xy, self.origin[0] if index is None else self.origin[index], self.resolution)

    @torch.no_grad()
    def goal_distance(self, goals: Tensor, index: Tensor | None = None, chunk: int | None = None, safe: bool = False,
                      route_risk: bool = False, severity: bool = False) -> Tensor:
        """Geodesic distance (m) to each goal over passable cells, 8-connected: goals [G, 2] on maps `index`
        [G] (None: map 0) -> [G, 1, h, w], or with `safe` [G, 2, h, w]: the plain and the safe distance (risk
        weighted), and with `route_risk` as well [G, 3, h, w]: the route risk (the hazard summed along the plain
        distance's route, module doc; it doubles the plain field's cost, so only a model that reads it asks),
        and with `severity` as well [G, 4, h, w]: the route severity (the largest severity along that route);
        the distances are UNREACHABLE where the goal cannot be reached from (route risk and severity 0 there)."""
        if route_risk and not safe:
            raise ValueError("the route risk comes with the safe distance (the eighth channel follows the seventh): "
                             "ask for safe=True as well")
        if severity and not route_risk:
            raise ValueError("the route severity comes with the route risk (the tenth field follows the eighth): "
                             "ask for route_risk=True as well")
        goals = torch.as_tensor(goals, dtype=torch.float32, device=self.layers.device).reshape(-1, 2)
        if index is None:
            index = torch.zeros(len(goals), dtype=torch.long, device=goals.device)
        # A chunk relaxes until its longest route converges: small chunks on a CPU waste fewer iterations.
        chunk = chunk or (512 if goals.is_cuda else 32)
        out = []
        for i in range(0, len(goals), chunk):
            g, idx = goals[i:i + chunk], index[i:i + chunk]
            if route_risk:
                level = torch.expm1(self.layers[idx, 2] * math.log(101.0)) / 100.0  # the hazard channel's inverse
                fields = list(self._distance_chunk(g, idx, None, carry=level,
                                                   carry_max=self.layers[idx, 4] if severity else None))
            else:
                fields = [self._distance_chunk(g, idx, None)]
            if safe:
                fields.insert(1, self._distance_chunk(g, idx, 1 + (SAFE_DETOUR_WEIGHT - 1) * self.layers[idx, 1]))
            out.append(torch.stack(fields, 1))
        return torch.cat(out) if out else self.layers.new_zeros((0, 1 + safe + route_risk + severity,
                                                                 *self.layers.shape[-2:]))

    @torch.no_grad()
    def route_distance(self, goals: Tensor, risk_margin_m: float, index: Tensor | None = None) -> Tensor:
        """The fields route candidates follow (core/route_candidates.py): goals [G, 2] -> [G, 2, h, w] metres, the way
        round risk (a metre inside a region counted ROUTE_RISK_WEIGHT times, within risk_margin_m of one
        SAFE_DETOUR_WEIGHT times: round wherever a way round exists, off the regions' edges where it can) and the
        shortest way (risk ignored), both over only the cells at least ROUTE_CLEARANCE_M from a wall (the model's own
        passable cells keep PASSABLE_CLEARANCE_M at most: a follower cutting a corner there would touch it), each metre
        costing more the nearer a wall (1 + ROUTE_WALL_WEIGHT x the obstacle cost), so a route keeps to the middle of a
        passage as a costmap planner's does. UNREACHABLE where the goal cannot be reached from at that clearance."""
        goals = torch.as_tensor(goals, dtype=torch.float32, device=self.layers.device).reshape(-1, 2)
        index = torch.zeros(len(goals), dtype=torch.long, device=goals.device) if index is None else index
        obstacle = self.layers[index, 0]
        walls = 1 + ROUTE_WALL_WEIGHT * obstacle
        if self.route_passable is not None:
            # Measured at the cell's centre: the max-pooled obstacle cost reads a feature cell by its finer cell
            # nearest a wall, and closed narrow_corridor's 0.8 m slit (its centre line keeps 0.4 m) and a gap on
            # val map gen0009006 (the way round 14.7 m instead of 12.2 m).
            passable = self.passable[index] & self.route_passable[index]
        else:  # the obstacle cost falls linearly from 1 at a wall to 0 at MAP_INFLATION_M (Costmap.from_occupancy)
            passable = self.passable[index] & (obstacle <= 1 - ROUTE_CLEARANCE_M / MAP_INFLATION_M)
        # A route follower cuts corners: a metre within risk_margin_m of a region costs SAFE_DETOUR_WEIGHT, so the
        # way keeps off the edges where it can; one inside costs ROUTE_RISK_WEIGHT, so it goes round wherever it can.
        inside = self.layers[index, 1]
        reach = 2 * round(risk_margin_m / self.resolution) + 1
        near = F.max_pool2d(inside[:, None], reach, stride=1, padding=reach // 2)[:, 0]
        risk_weight = 1 + (SAFE_DETOUR_WEIGHT - 1) * near + (ROUTE_RISK_WEIGHT - SAFE_DETOUR_WEIGHT) * inside
        return torch.stack([self._distance_chunk(goals, index, risk_weight * walls,
                                                 passable=passable),
                            self._distance_chunk(goals, index, walls, passable=passable)], 1)

    def _distance_chunk(self, goals: Tensor, index: Tensor, weight: Tensor | None, carry: Tensor | None = None,
                        passable: Tensor | None = None, carry_max: Tensor | None = None):
        """weight [G, h, w]: the cost of a metre entering each cell (None: 1 everywhere). carry [G, h, w]: a
        quantity per metre summed along each cell's shortest route as well (returned second): a cell takes its
        route's sum from the neighbour its distance came through, so the sum follows the route found. carry_max
        [G, h, w] (with carry): a quantity per cell whose largest along the same route is returned third.
        passable [G, h, w]: the cells a route may use (None: the map's own, and its fringe cells read their passable
        neighbours' distance plus the step: one more relaxation once the rest has converged, so no route runs through
        one)."""
        g, (h, w) = len(goals), self.layers.shape[-2:]
        fringe = self.fringe[index] if passable is None and self.fringe is not None else None
        passable = (self.passable[index] if passable is None else passable).clone()
        rc = self.cells_of(goals, index)
        rows, cols = rc[:, 0].clamp(0, h - 1), rc[:, 1].clamp(0, w - 1)
        arange = torch.arange(g, device=goals.device)
        passable[arange, rows, cols] = True  # a goal next to a wall is still a goal
        inf = torch.tensor(math.inf, device=goals.device)
        dist = torch.full((g, h, w), math.inf, device=goals.device)
        dist[arange, rows, cols] = 0.0
        total = None if carry is None else torch.zeros_like(dist)
        # The goal cell's own value starts its route's largest; every other cell takes its route's on the way.
        peak = None if carry_max is None else torch.zeros_like(dist)
        if peak is not None:
            peak[arange, rows, cols] = carry_max[arange, rows, cols]
        shifts = [(dy, dx, self.resolution * math.hypot(dy, dx)) for dy, dx in NEIGHBOURS]

        def relax(dist, total, peak, passable):
            padded = F.pad(dist, (1, 1, 1, 1), value=math.inf)
            padded_total = None if total is None else F.pad(total, (1, 1, 1, 1))
            padded_peak = None if peak is None else F.pad(peak, (1, 1, 1, 1))
            best, best_total, best_peak = dist, total, peak
            for dy, dx, step in shifts:
                move = step if weight is None else step * weight
                through = padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] + move
                if total is not None:
                    better = through < best
                    best_total = torch.where(better, padded_total[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                                             + step * carry, best_total)
                    if peak is not None:
                        best_peak = torch.where(better, torch.maximum(
                            padded_peak[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w], carry_max), best_peak)
                best = torch.minimum(best, through)
            return torch.where(passable, best, inf), best_total, best_peak

        # Bellman-Ford relaxation, all cells at once: one ring per iteration, stop when nothing changes. A cell's
        # distance is final one iteration after its route's next cell's, so the carried sum is final with it.
        for iteration in range(2 * (h + w) * 4):
            best, best_total, best_peak = relax(dist, total, peak, passable)
            if iteration % 8 == 7 and torch.equal(best, dist):
                break
            dist, total, peak = best, best_total, best_peak
        if fringe is not None:  # from converged neighbours only: fringe cells are inf until now, so none leads on
            dist, total, peak = relax(dist, total, peak, passable | fringe)
        dist = torch.nan_to_num(dist, posinf=UNREACHABLE)
        if total is None:
            return dist
        reachable = dist < UNREACHABLE
        total = torch.where(reachable, total, torch.zeros_like(total))
        if peak is None:
            return dist, total
        return dist, total, torch.where(reachable, peak, torch.zeros_like(peak))

    def patches(self, centres: Tensor, distance: Tensor, cells: int, extent_m: float,
                index: Tensor | None = None, channels: int | None = None) -> Tensor:
        """Egocentric patches [B, C, cells, cells] (the first C of PATCH_CHANNELS) of side extent_m around centres
        [B, 2], with each row's F goal distance fields distance [B, F, h, w] (goal_distance); index [B] picks each
        row's map (None: all on map 0). C: `channels` (a model's map_channels), else all the fields allow (4 to 10)."""
        if index is None:  # one map for every row: one lookup, no per-row copy of the layers
            return cut_patches(self.layers[:1], self.origin[0], self.resolution, centres, distance, cells, extent_m,
                               channels)
        return cut_patches(self.layers[index], self.origin[index][:, None, None, :], self.resolution, centres, distance,
                           cells, extent_m, channels)


def grid_cells(xy: Tensor, origin: Tensor, resolution: float) -> Tensor:
    """(row, col) [..., 2] long of the cells holding world points xy [..., 2] on a grid of `resolution` m whose
    cell (0, 0) has its lower-left corner at origin [..., 2]."""
    return torch.floor((xy - origin) / resolution).long().flip(-1)


def grid_coordinates(world: Tensor, origin: Tensor, resolution: float, height: int, width: int) -> Tensor:
    """grid_sample's coordinates [..., 2] (in [-1, 1] on the grid, align_corners=False) of world points world [..., 2]
    on a height x width grid of `resolution` m whose cell (0, 0) has its lower-left corner at origin (broadcast).
    Scaled per axis by Python numbers, not by a tensor built here: no host-to-device copy (capturable)."""
    relative = world - origin.to(world.dtype)
    return torch.stack([relative[..., 0] / (width * resolution), relative[..., 1] / (height * resolution)], -1) * 2 - 1


def downhill_steps(distance: Tensor, resolution: float) -> tuple[Tensor, Tensor]:
    """For every cell of goal distance fields distance [B, h, w], the neighbour a walk down the field steps to (the
    one with the least distance plus the step's length, if that is downhill; else the cell itself: the goal, or a cell
    the goal cannot be reached from) -> (next_cell [B, h * w] flat indices, step_m [B, h * w] the step's metres).
    Computed once per field (PlanningMap.route_steps caches it), so a walk (route_candidates.py) is one gather per
    cell walked."""
    b, (h, w) = distance.shape[0], distance.shape[-2:]
    dev = distance.device
    padded = F.pad(distance, (1, 1, 1, 1), value=math.inf)
    offsets = torch.tensor(NEIGHBOURS, device=dev)  # [8, 2]
    step_m = resolution * offsets.float().norm(dim=1)  # [8]: 0.1 or 0.14 m
    through = torch.stack([padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in NEIGHBOURS], -1) + step_m
    best = through.argmin(-1)  # [B, h, w]
    downhill = through.gather(-1, best[..., None])[..., 0] - step_m[best] < distance
    rows = torch.arange(h, device=dev)[:, None] + offsets[best, 0]
    cols = torch.arange(w, device=dev)[None, :] + offsets[best, 1]
    here = torch.arange(h * w, device=dev).view(h, w)
    next_cell = torch.where(downhill, rows * w + cols, here)
    return next_cell.reshape(b, -1), torch.where(downhill, step_m[best], torch.zeros_like(distance)).reshape(b, -1)


def cut_patches(layers: Tensor, origin: Tensor, resolution: float, centres: Tensor, distance: Tensor, cells: int,
                extent_m: float, channels: int | None = None) -> Tensor:
    """MapLayers.patches on bare tensors: layers [1 or B, 5, h, w] (one map for all rows, or each row's), origin [2]
    or [B, 1, 1, 2] (world position of cell (0, 0)), resolution in m. Pure tensor work with no host sync or
    copy, so a replan program can cut its patches inside its captured graph (planner.py)."""
    b, dev = len(centres), centres.device
    half = extent_m / 2
    offsets = (torch.arange(cells, device=dev, dtype=torch.float32) + 0.5) / cells * extent_m - half  # [P]
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    world = centres[:, None, None, :] + torch.stack([ox, oy], -1)[None]  # [B, P, P, 2], row = y
    h, w = layers.shape[-2:]
    grid = grid_coordinates(world, origin, resolution, h, w)
    if len(layers) == 1:  # one map for every row: one lookup, no per-row copy of the layers
        looked_up = F.grid_sample(layers, grid.reshape(1, b * cells, cells, 2), mode="bilinear",
                                  padding_mode="zeros", align_corners=False)
        looked_up = looked_up.reshape(layers.shape[1], b, cells, cells).transpose(0, 1)
    else:
        looked_up = F.grid_sample(layers, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    obstacle, risk, hazard, valid, severity = looked_up.unbind(1)
    # Nearest: a bilinear mix with an UNREACHABLE neighbour would make a reachable cell look unreachable.
    dist = F.grid_sample(distance.float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    dist = torch.where(valid[:, None] > 0.5, dist, torch.full_like(dist, UNREACHABLE))
    c = cells // 2
    distances = dist[:, :2]  # the plain and the safe distance (then, when there, the route risk and route severity)
    own = distances[:, :, c - 1:c + 1, c - 1:c + 1].amin((2, 3))  # the robot's cell(s) at the patch centre
    relative = ((distances - own[:, :, None, None]) / half).clamp(-_DISTANCE_CLIP, _DISTANCE_CLIP)
    available = _CHANNELS_OF[dist.shape[1]]
    channels = available if channels is None else channels
    if channels > available:
        raise ValueError(f"{channels} patch channels asked for, the {dist.shape[1]} goal distance field(s) give "
                         f"{available}: a model with the safe distance channel needs a map with safe_distance=True, "
                         f"one with the route risk its field as well (goal_distance(..., route_risk=True)), one with "
                         f"the severity the route severity's too (severity=True)")
    out = [torch.stack([obstacle + (1 - valid), risk, hazard], 1), relative]
    if channels > SAFE_CHANNELS:  # the route channels, only for a model that reads them (an unreachable cell: no detour)
        route = (dist[:, 0] / ROUTE_SCALE_M).clamp(0, _ROUTE_CLIP)
        detour = ((dist[:, 1] - dist[:, 0]) / ROUTE_SCALE_M).clamp(0, _ROUTE_CLIP)
        out.append(torch.stack([route, detour], 1))
    on_map = valid > 0.5
    if channels > ROUTE_CHANNELS:  # off the map: no route, no route risk
        out.append(torch.where(on_map, dist[:, 2], torch.zeros_like(dist[:, 2])).clamp(0, _ROUTE_RISK_CLIP)[:, None])
    if channels > ROUTE_RISK_CHANNELS:  # the severity here and along the route (off the map: none)
        out.append(torch.stack([severity, torch.where(on_map, dist[:, 3], torch.zeros_like(dist[:, 3]))], 1))
    return torch.cat(out, 1)[:, :channels]


def sample_along(patches: Tensor, xy: Tensor, extent_m: float) -> Tensor:
    """Patch channels at plan positions: patches [B, C, P, P], xy [B*K, H, 2] metres from each patch's
    centre (rows b*K .. b*K+K-1 belong to patch b) -> [B*K, H, C]. Bilinear, so differentiable in xy
    (the guidance gradient flows through it); beyond the patch the edge value."""
    b, c = patches.shape[:2]
    m, horizon = xy.shape[:2]
    # grid_sample's CPU backward crashes the process on a NaN coordinate (a diverged model's plans): as in
    # Costmap.lookup, beyond +-1 the border padding already gives the edge value and zero gradient.
    grid = torch.nan_to_num(xy / (extent_m / 2), nan=1.5).clamp(-1.5, 1.5)
    grid = grid.reshape(b, (m // b) * horizon, 1, 2).to(patches.dtype)
    out = F.grid_sample(patches, grid, mode="bilinear", padding_mode="border", align_corners=False)  # [B, C, K*H, 1]
    return out[..., 0].permute(0, 2, 1).reshape(m, horizon, c)


def _clear_of(blocked: Tensor, resolution: float, size: tuple[int, int], clearance: float, whole_cell: bool) -> Tensor:
    """[h', w'] bool at FEATURE_RESOLUTION (`size`): True where a feature cell lies at least `clearance` from every cell
    of `blocked` [h, w] (at `resolution`), measured as the collision check measures (core/clearance_rule.py).
    `whole_cell`: every fine cell of the feature cell must pass, so a straight step between two such cells' centres (a
    route's step) passes the check all along; else its centre alone.
    The model's passable cells need the whole cell: by the centre alone its goal distance ran through diagonal gaps
    whose in-between points the check refuses, and robots circled there (gen1000014, 25 s). The route's 0.35 m by the
    centre alone keeps every point of the cell 0.28 m clear, and the whole-cell rule would close a 0.8 m slit
    (narrow_corridor's safe way) whose centre line falls on a cell edge."""
    k = max(int(round(FEATURE_RESOLUTION / resolution)), 1)  # fine cells a feature cell spans (1: as fine or coarser)
    if whole_cell:
        k = 1  # the check's own test at every fine cell, then each feature cell takes its worst fine cell (below)
    reach = int(math.ceil(clearance / resolution)) + 1
    # Kernel cell o lies (o - reach - (k - 1) / 2) cells from the centre of the feature cell its window starts at.
    offsets = torch.arange(2 * reach + k, device=blocked.device, dtype=torch.float32) - reach - (k - 1) / 2  # cells
    disk = (distance_to_blocked_cell(offsets[:, None], offsets[None, :], resolution) < clearance).float()
    h, w = blocked.shape
    # Beyond the map counts as blocked, as for the check (a layout's walls lie inside it: no change there).
    padded = F.pad(blocked.float()[None, None], (reach, reach + (-w) % k, reach, reach + (-h) % k), value=1.0)
    near = F.conv2d(padded, disk[None, None], stride=k)[0] > 0.5
    if k == 1:
        near = _to_feature_grid(near.float(), resolution) > 0.5  # a coarser grid: each feature cell takes its cell's
    near = near[0, :size[0], :size[1]]
    if tuple(near.shape) != tuple(size):
        raise ValueError(f"clearance grid {tuple(near.shape)} does not cover the feature grid {tuple(size)}")
    return ~near


def _to_feature_grid(stacked: Tensor, resolution: float) -> Tensor:
    """[C, h, w] at `resolution` -> [C, h', w'] at FEATURE_RESOLUTION: max over finer cells, nearest from coarser."""
    h, w = stacked.shape[-2:]
    size = (max(1, round(h * resolution / FEATURE_RESOLUTION)), max(1, round(w * resolution / FEATURE_RESOLUTION)))
    if size == (h, w):
        return stacked
    if size[0] < h:
        return F.adaptive_max_pool2d(stacked[None], size)[0]
    return F.interpolate(stacked[None], size=size, mode="nearest")[0]


class PlanningMap:
    """One map as a map-conditioned planner reads it: its layers, and a goal distance field per goal
    (cached by goal cell, so robots and replans towards one goal compute it once)."""

    MAX_FIELDS = 2048  # cached goal distance fields (a 16 x 16 m map: 100 kB each)

    def __init__(self, layers: MapLayers, safe_distance: bool = True):
        if len(layers) != 1:
            raise ValueError(f"a PlanningMap holds one map, got {len(layers)}")
        self.layers, self.safe_distance = layers, safe_distance
        # (row, col, fields) -> that many goal distance fields; ("route", row, col) -> a route's steps
        self._fields: dict[tuple, Tensor] = {}
        self._derived: dict[str, Tensor] = {}  # name -> what a replan reads of the whole map (derived)
        self._origin_host = layers.origin[0].detach().cpu()  # goal cells are found on the host: no sync per replan

    @classmethod
    def from_grids(cls, occupancy_grid, hazard_grid=None, inflation_radius: float = MAP_INFLATION_M,
                   unknown_is_obstacle: bool = True, device="cpu", safe_distance: bool = True,
                   passable_clearance_m: float = LEGACY_PASSABLE, severity_grid=None) -> "PlanningMap":
        """From grids with `.data`, `.resolution`, `.origin_x`, `.origin_y` (a costmap, its risk layer and the risk
        layer's severity); `safe_distance` and `passable_clearance_m` as the model reading it was trained with."""
        g = occupancy_grid
        hazard, severity = (_same_geometry(grid, g, what) for grid, what in ((hazard_grid, "risk map"),
                                                                              (severity_grid, "risk severity map")))
        return cls(MapLayers.from_grids(g.data, g.resolution, g.origin_x, g.origin_y, hazard, inflation_radius,
                                        unknown_is_obstacle, device, passable_clearance_m, route_ways=True,
                                        severity=severity), safe_distance)

    @property
    def device(self) -> torch.device:
        return self.layers.layers.device

    def to(self, device) -> "PlanningMap":
        """This map on `device`: itself (with its cached fields) when already there. "cuda" and "cuda:0" are
        one device, so the comparison is on a tensor's resolved device, not on the names."""
        if torch.empty(0, device=device).device == self.device:
            return self
        return PlanningMap(self.layers.to(device), self.safe_distance)

    def derived(self, name: str, make) -> Tensor:
        """make(layers [1, len(LAYER_NAMES), h, w]), computed the first time `name` is asked for: a pass over the whole
        map that a replan reads (the critic's dilated risk layers, risk_read.py) costs once per map, not per replan."""
        if name not in self._derived:
            self._derived[name] = make(self.layers.layers)
        return self._derived[name]

    def distance_fields(self, goals: Tensor, route_risk: bool = False, severity: bool = False) -> Tensor:
        """[B, F, h, w] goal distance fields of goals [B, 2] (MapLayers.goal_distance: plain, safe with
        safe_distance, route risk when asked as well, route severity with it when asked too), computing only the ones
        not cached."""
        route_risk = route_risk and self.safe_distance
        severity = severity and route_risk
        fields = 1 + self.safe_distance + route_risk + severity
        rows_cols = grid_cells(goals.detach().cpu(), self._origin_host, self.layers.resolution)
        cells = [(*rc, fields) for rc in rows_cols.tolist()]
        missing = sorted({c for c in cells if self._cached(c) is None})
        if missing:
            if len(self._fields) + len(missing) > self.MAX_FIELDS:
                self._fields.clear()
            centres = self._centres([c[:2] for c in missing])
            for cell, field in zip(missing, self.layers.goal_distance(centres, safe=self.safe_distance,
                                                                      route_risk=route_risk, severity=severity)):
                self._fields[cell] = field
        return torch.stack([self._cached(c) for c in cells])

    def cells_on_map(self, xy: Tensor) -> tuple[Tensor, Tensor]:
        """((row, col) [..., 2] of world points xy [..., 2] on this map's grid, clamped onto it; [...] bool whether each
        point lies on the map): what reading a field at points needs, with +inf where `inside` is False."""
        h, w = self.layers.layers.shape[-2:]
        rc = self.layers.cells_of(xy.to(self.device))
        inside = (rc[..., 0] >= 0) & (rc[..., 0] < h) & (rc[..., 1] >= 0) & (rc[..., 1] < w)
        return torch.stack([rc[..., 0].clamp(0, h - 1), rc[..., 1].clamp(0, w - 1)], -1), inside

    def distances_at(self, goals, xy, route_risk_margin_m: float | None = None) -> np.ndarray:
        """The goal distance fields' values [B, F] (plain, safe with safe_distance; then, given route_risk_margin_m,
        the route candidates' two ways, route_distances; UNREACHABLE off the passable cells, inf off the map) of goals
        [B, 2] at world points xy [B, 2], on the host: one gather for all and one copy (the controller's progress check
        asks every tick for every robot). Looked up goal by goal (a handful of kernels each, and an evaluation's robots
        each have a goal of their own) it slowed the 50-map GPU gate to 49-75 env steps/s a map process; 82-218 since."""
        goals = torch.as_tensor(np.asarray(goals, np.float32).reshape(-1, 2))  # on the host: fields are cached by cell
        if not len(goals):
            return np.zeros((0, self.distance_count(route_risk_margin_m)))
        rc, inside = self.cells_on_map(torch.as_tensor(np.asarray(xy, np.float32).reshape(-1, 2)))
        robots = torch.arange(len(goals), device=self.device)
        values = self.distance_fields(goals)[robots, :, rc[:, 0], rc[:, 1]]  # the fields are cached: a stack
        if route_risk_margin_m is not None:  # gathered apart: concatenating the whole fields would copy them again
            route = self.route_distances(goals, route_risk_margin_m)[robots, :, rc[:, 0], rc[:, 1]]
            values = torch.cat([values, route], 1)
        return torch.where(inside[:, None], values, math.inf).cpu().numpy().astype(np.float64)

    def distance_count(self, route_risk_margin_m: float | None = None) -> int:
        """How many values distances_at gives a goal: plain, safe with safe_distance, the two route ways given a margin."""
        return 1 + bool(self.safe_distance) + 2 * (route_risk_margin_m is not None)

    def route_steps(self, goals: Tensor, risk_margin_m: float) -> tuple[Tensor, Tensor]:
        """The ways route candidates follow (MapLayers.route_distance: round risk, keeping risk_margin_m off regions
        where it can, and the shortest) for goals [B, 2], as the step each cell's walk takes (downhill_steps: next cell
        [B, 2, h * w], metres [B, 2, h * w]); one pair per goal cell and margin, computed when first asked for and
        cached like the goal distance fields."""
        cells = self._route_cells(goals, risk_margin_m)
        return (torch.stack([self._fields[c][0] for c in cells]), torch.stack([self._fields[c][1] for c in cells]))

    def route_distances(self, goals: Tensor, risk_margin_m: float) -> Tensor:
        """The distance fields [B, 2, h, w] of the ways route_steps walks (round risk, shortest), in their own costs
        (MapLayers.route_distance: a metre in a region or by a wall counts more); cached with the steps."""
        return torch.stack([self._fields[c][2] for c in self._route_cells(goals, risk_margin_m)])

    def _route_cells(self, goals: Tensor, risk_margin_m: float) -> list[tuple]:
        """The cache keys of goals' route ways at risk_margin_m, each entry (next cell, step metres, distance fields)
        computed when first asked for."""
        rows_cols = grid_cells(torch.as_tensor(goals).detach().cpu(), self._origin_host, self.layers.resolution)
        cells = [("route", float(risk_margin_m), *rc) for rc in rows_cols.tolist()]
        missing = sorted({c for c in cells if c not in self._fields})
        if missing:
            if len(self._fields) + len(missing) > self.MAX_FIELDS:
                self._fields.clear()
            fields = self.layers.route_distance(self._centres([c[2:] for c in missing]), risk_margin_m)
            next_cell, step_m = downhill_steps(fields.flatten(0, 1), self.layers.resolution)
            for cell, n, m, f in zip(missing, next_cell.view(len(missing), 2, -1), step_m.view(len(missing), 2, -1),
                                     fields):
                self._fields[cell] = (n, m, f)
        return cells

    def _centres(self, rows_cols: list) -> Tensor:
        """World centres [N, 2] of cells [(row, col)]: a cell's fields are computed from its centre, and every goal
        in it shares them."""
        cells = torch.tensor(rows_cols, dtype=torch.float32, device=self.device).reshape(-1, 2)
        return (cells.flip(-1) + 0.5) * self.layers.resolution + self.layers.origin[0]

    def _cached(self, cell: tuple) -> Tensor | None:
        """The cached fields of (row, col, fields); a request for fewer is served by the first fields of an entry with
        more (the same plain and safe distance, route risk), e.g. a recovery step's on a map model that reads more."""
        for fields in range(cell[2], 5):
            more = self._fields.get((*cell[:2], fields))
            if more is not None:
                return more[:cell[2]]
        return None

    def patches(self, centres: Tensor, goals: Tensor, cells: int, extent_m: float, channels: int | None = None) -> Tensor:
        """Patches [B, C, cells, cells] around centres [B, 2] for goals [B, 2]: the first `channels` of
        PATCH_CHANNELS (a model's map_channels), else all this map gives (MapLayers.patches)."""
        return self.layers.patches(centres, self.fields_for(goals, channels), cells, extent_m, channels=channels)

    def fields_for(self, goals: Tensor, channels: int | None = None) -> Tensor:
        """The goal distance fields [B, F, h, w] that patches of `channels` read: the route risk field only for a
        model that reads it (channels None or above ROUTE_CHANNELS), the route severity's for one reading the severity
        (None or above ROUTE_RISK_CHANNELS)."""
        return self.distance_fields(goals, route_risk=channels is None or channels > ROUTE_CHANNELS,
                                    severity=channels is None or channels > ROUTE_RISK_CHANNELS)


def _same_geometry(grid, costmap, what: str):
    """`grid`'s cells (None: None) after checking it lies on `costmap`'s grid."""
    if grid is None:
        return None
    same = (np.shape(grid.data) == np.shape(costmap.data) and abs(grid.resolution - costmap.resolution) < 1e-9
            and abs(grid.origin_x - costmap.origin_x) < 1e-9 and abs(grid.origin_y - costmap.origin_y) < 1e-9)
    if not same:
        raise ValueError(f"the {what}'s geometry (size, resolution, origin) differs from the costmap's; "
                         "publish both on one grid")
    return grid.data
