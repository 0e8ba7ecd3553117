"""The one place that decides the robot's command; the planner node and the evaluation both drive it.

A tick (`Controller.step`, or `step_all` for many robots with one batched planner call) runs
named stages, as Nav2's MPPI computeVelocityCommands does:

  check_inputs   goal, odometry watchdog, costmap present and fresh, robot and goal on the map; the state
                 moved on by the odometry's age and the time a tick takes to plan (odom_prediction.py,
                 command_delay.py)
  goal_reached   within goal_tolerance_m of the measured (not predicted) position: stop and drop the goal
  progress       a robot that has not come progress_radius_m closer to the goal (along free space) in
                 progress_timeout_s is stuck: the recovery (recovery.py) drives it instead of the model until it
                 has (progress_checker.py, NO_PROGRESS)
  plan           RiskSensitivePlanner.plan_batch for every robot that got this far
  select_safe    the best-scoring candidate whose plan and command are collision-free (collision.py) and
                 that does not turn the robot back on the spot (turn_commitment.py; where every admitted one would,
                 the robot keeps turning the held way);
                 none: sample once more with more candidates; still none: a slow step down the goal's
                 free-space distance that the check admits (recovery.py), else stop and turn in place
                 towards free space (NO_VALID_CONTROL, as Nav2's controllers report it)
  shape_command  non-finite action -> stop; approach slowdown and the velocity clips

Every stop carries a reason (`StopReason`) and a sentence saying why, which the node publishes and
logs. Inputs arrive as events (`on_odometry`, `on_costmap`, `on_risk_map`, `on_risk_severity_map`, `set_goal`), with the
receiver's clock, so the same rules hold for DDS messages and for an evaluation's simulated time.

The risk layer (`on_risk_map`: a `Grid` of hazard levels 0..100, /risk_map, docs/ros.md) is what a
map-conditioned model reads, with the costmap (core/map_input.py PlanningMap, built once per map). Until
one arrives such a model plans on the costmap with no risk known, as a robot told of no hazard would;
a per-map model learned its map's risk and ignores it. The risk layer's severity (`on_risk_severity_map`: severity
levels 0..100, /risk_severity_map) is read by a model with model.map_severity; until one arrives, every risky cell
reads as the largest event the scale holds (map_input.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import numpy as np
import torch

from rs_diffuser_ros.control.collision import ClearanceMap, plan_step_s, safe_candidates
from rs_diffuser_ros.control.command_delay import CommandDelay
from rs_diffuser_ros.control.goal_approach import approach_speed_limit
from rs_diffuser_ros.control.odom_prediction import predicted_state
from rs_diffuser_ros.control.odom_watchdog import OdometryWatchdog
from rs_diffuser_ros.control.progress_checker import ProgressChecker
from rs_diffuser_ros.control.recovery import braking_turn, recovery_heading, recovery_step
from rs_diffuser_ros.control.settings import MODEL_OWN, ControllerSettings
from rs_diffuser_ros.control.turn_commitment import TurnCommitment, turns_against
from rs_diffuser_ros.core.costmap import Costmap
from rs_diffuser_ros.core.map_input import PASSABLE_CLEARANCE_M, UNREACHABLE, PlanningMap
from rs_diffuser_ros.core.planner import PlanResult


class Grid(NamedTuple):
    """An occupancy grid in the nav_msgs/OccupancyGrid layout (risky_nav's OccupancyGrid has the same fields)."""

    data: np.ndarray  # int8 [height, width]: 0 free .. 100 occupied, -1 unknown; row = y, column = x
    resolution: float  # metres per cell
    origin_x: float  # world position of the lower-left corner of cell (0, 0)
    origin_y: float


class StopReason(str, Enum):
    NO_GOAL = "no_goal"              # idle: nothing to do (the node publishes nothing)
    GOAL_REACHED = "goal_reached"
    ODOMETRY = "odometry"            # none yet, stale, invalid
    NO_COSTMAP = "no_costmap"
    COSTMAP_STALE = "costmap_stale"
    OUTSIDE_MAP = "outside_map"      # robot or goal beyond the costmap: the model knows nothing there
    PLAN_FAILED = "plan_failed"      # the planner raised or returned a non-finite action
    NO_VALID_CONTROL = "no_valid_control"  # every candidate collides: a recovery step, or turning in place
    NO_PROGRESS = "no_progress"      # the robot is stuck (progress check): a recovery step, or turning in place


@dataclass
class Command:
    v: float
    omega: float
    stop: StopReason | None = None   # None while driving
    why: str = ""                    # a sentence for the log when stopped
    plan: PlanResult | None = None   # what the planner proposed this tick, if it ran (the executed choice)
    events: tuple[str, ...] = ()     # what the safety stage did: "pick_collided" / "pick_kept_turning" (another
                                     # candidate ran: the best collides / would turn back on the spot), "resampled",
                                     # "held_turn" (no candidate ran: each admitted one would turn back on the spot)

    @classmethod
    def stopped(cls, reason: StopReason, why: str, plan: PlanResult | None = None) -> "Command":
        return cls(0.0, 0.0, reason, why, plan)

    @property
    def action(self) -> np.ndarray:
        return np.array([self.v, self.omega], dtype=np.float32)


@dataclass
class _PlanRequest:
    state: np.ndarray
    goal: np.ndarray
    speed_limit: float
    costmap: Costmap | None
    clearance: ClearanceMap | None  # None: the collision check is off
    map_input: PlanningMap | None = None  # what a map-conditioned model plans on (None for a per-map model)
    carried: np.ndarray | None = None  # last tick's executed plan moved on one step (settings.carry_plan), or None
    turn_sign: float = 0.0  # the in-place turn direction held (turn_commitment.py): +1 left, -1 right, 0 none


class Controller:
    """One robot's control rules and the inputs they need; `planner` may be shared between controllers."""

    def __init__(self, planner, settings: ControllerSettings | None = None):
        self.settings = settings or ControllerSettings()
        self.watchdog = OdometryWatchdog(self.settings.odom_timeout_s)
        self.goal: np.ndarray | None = None
        self.grid: Grid | None = None  # the last costmap received
        self.map_bounds: tuple[float, float, float, float] | None = None  # its extent
        self.grid_received_at = -math.inf
        self.risk_map: Grid | None = None  # the last risk layer received (hazard 0..100): a map model's risk input
        self.risk_map_received_at = -math.inf
        self.risk_severity_map: Grid | None = None  # the last severity layer received (0..100): the risk events' size
        self.risk_severity_map_received_at = -math.inf
        self.last_plan: np.ndarray | None = None  # the plan executed last tick [H, D] (world), for carry_plan
        self.turning = TurnCommitment()
        self.progress = ProgressChecker()
        self.command_delay = CommandDelay()  # how long a tick's planning takes on this machine (command_delay.py)
        self.set_planner(planner)

    # --- inputs -------------------------------------------------------------------------
    def set_planner(self, planner) -> None:
        """Use another model (a checkpoint swap); its own sampling settings back the MODEL_OWN sentinels."""
        self.planner = planner
        self.last_plan = None  # another model's horizon and state layout may differ
        self.model_sampling = {name: getattr(planner.own_planner_config, name) for name in MODEL_OWN}

    def set_settings(self, settings: ControllerSettings) -> None:
        self.settings = settings

    def set_goal(self, goal) -> None:
        self.goal = None if goal is None else np.asarray(goal, dtype=np.float32).reshape(2)
        self.last_plan = None  # a plan towards the old goal is no commitment worth keeping
        self.turning.release()
        self.progress.reset()

    def on_odometry(self, state, now_s: float, stamp_s: float = 0.0, clock_now_s: float | None = None) -> str | None:
        """A valid state [6] arrived at `now_s` (receiver's monotonic clock), stamped `stamp_s` (0: unstamped),
        when the receiver's wall/ROS clock read `clock_now_s`. Returns why it was dropped, or None."""
        self.watchdog.timeout_s = self.settings.odom_timeout_s
        self.watchdog.count_arrival(now_s)
        dropped = self.watchdog.check_stamp(stamp_s, now_s if clock_now_s is None else clock_now_s, now_s)
        if dropped is None:
            self.watchdog.accept(np.asarray(state, dtype=np.float32), now_s, stamp_s)
        return dropped

    def on_tick_duration(self, seconds: float) -> None:
        """A tick that planned took `seconds` of wall clock before its command went out (the node times it)."""
        self.command_delay.record(seconds)

    def on_invalid_odometry(self, reason: str, now_s: float) -> None:
        self.watchdog.count_arrival(now_s)
        self.watchdog.reject(reason, now_s)

    def on_costmap(self, grid, now_s: float) -> None:
        """An occupancy grid (a `Grid`, or anything with its fields) arrived at `now_s`."""
        grid = _kept_if_same(grid, self.grid)
        if grid is not self.grid:
            height, width = np.shape(grid.data)
            self.map_bounds = (grid.origin_x, grid.origin_y, grid.origin_x + width * grid.resolution,
                               grid.origin_y + height * grid.resolution)  # (x_min, y_min, x_max, y_max)
        self.grid, self.grid_received_at = grid, now_s

    def on_risk_map(self, grid, now_s: float) -> None:
        """A risk layer (a `Grid` of hazard levels 0..100, -1 unknown) arrived at `now_s`: kept as `risk_map`."""
        self.risk_map, self.risk_map_received_at = _kept_if_same(grid, self.risk_map), now_s

    def on_risk_severity_map(self, grid, now_s: float) -> None:
        """The risk layer's severity (a `Grid` of severity levels 0..100, one event's size) arrived at `now_s`: kept as
        `risk_severity_map`."""
        self.risk_severity_map = _kept_if_same(grid, self.risk_severity_map)
        self.risk_severity_map_received_at = now_s

    # --- one tick -----------------------------------------------------------------------
    def step(self, now_s: float, seed: int | None = None) -> Command:
        return step_all([self], now_s, seed)[0]

    def check_inputs(self, now_s: float) -> tuple[Command | None, np.ndarray | None]:
        """Stage 1: (the stop this tick's inputs call for, None) or (None, the state to plan from)."""
        s, goal = self.settings, self.goal
        if goal is None:
            return Command.stopped(StopReason.NO_GOAL, "no goal"), None
        self.watchdog.timeout_s = s.odom_timeout_s
        state, why = self.watchdog.current(now_s)
        if state is None:
            return Command.stopped(StopReason.ODOMETRY, why), None
        if self.grid is None:
            return Command.stopped(StopReason.NO_COSTMAP, "no costmap received yet"), None
        age = now_s - self.grid_received_at
        if s.costmap_timeout_s > 0 and age > s.costmap_timeout_s:
            return Command.stopped(StopReason.COSTMAP_STALE, f"costmap is stale: last one {age:.2f} s ago "
                                   f"(costmap_timeout_s = {s.costmap_timeout_s:g})"), None
        if s.odom_prediction:  # the robot drove on since this odometry arrived, and will while this tick plans
            state = predicted_state(state, self.watchdog.age(now_s) + self.command_delay.estimate(s.odom_timeout_s))
        for what, xy in (("robot", state[:2]), ("goal", goal)):
            why = _outside(xy, self.map_bounds)
            if why:
                return Command.stopped(StopReason.OUTSIDE_MAP, f"{what} outside the map: {why}"), None
        return None, state

    def goal_reached(self, now_s: float) -> Command | None:
        """Stage 2: stop and forget the goal within goal_tolerance_m of it, as the latest odometry measured it.

        Not from the predicted state: that extrapolates the speed of the last odometry while the approach slowdown
        brakes, so it arrives early; a robot stopped a few cm outside the goal would then never be moved again."""
        state, goal = self.watchdog.current(now_s)[0], self.goal
        distance = math.hypot(float(state[0] - goal[0]), float(state[1] - goal[1]))
        if distance > self.settings.goal_tolerance_m:
            return None
        self.goal = None
        return Command.stopped(StopReason.GOAL_REACHED,
                               f"goal reached ({distance:.2f} m <= {self.settings.goal_tolerance_m:g} m)")

    def plan_request(self, state: np.ndarray, maps: tuple | None = None) -> _PlanRequest:
        """Stage 3's input. `maps`: this controller's `plan_maps()` when the caller already has them."""
        s, goal = self.settings, self.goal
        distance = math.hypot(float(state[0] - goal[0]), float(state[1] - goal[1]))
        limit = approach_speed_limit(distance, s.max_linear_speed, s.approach_slowdown_m, s.min_approach_speed)
        return _PlanRequest(state, goal, limit, *(self.plan_maps() if maps is None else maps), self.carried_plan(state),
                            self.turning.current(state, s.turn_commitment_m))

    def carried_plan(self, state: np.ndarray) -> np.ndarray | None:
        """With settings.carry_plan: the plan executed last tick, one tick on (a tick is one control period: one plan
        step, or 1 / model.plan_stride of one, read between its states), starting exactly at `state`; its last state
        is held. None when off or when nothing was executed."""
        last = self.last_plan
        if not self.settings.carry_plan or last is None:
            return None
        at = np.arange(len(last)) + 1.0 / self.planner.config.model.plan_stride  # where each carried state lies
        below = np.minimum(np.floor(at).astype(int), len(last) - 1)
        above, frac = np.minimum(below + 1, len(last) - 1), (at - np.floor(at))[:, None].astype(last.dtype)
        carried = last[below] * (1 - frac) + last[above] * frac
        carried[0] = state
        return carried

    def plan_maps(self) -> tuple[Costmap | None, ClearanceMap | None, PlanningMap | None]:
        """(costmap, clearance, map_input) the planner and the collision check use: they depend only on the planner,
        the settings, the costmap and the risk layer, so robots sharing those share them (step_all asks once)."""
        s = self.settings
        costmap = _inflated(self.grid, s.costmap_inflation_m, s.unknown_is_obstacle) if s.use_costmap else None
        clearance = _clearance_map(self.grid, s.unknown_is_obstacle, self.planner.device) if s.collision_check else None
        map_input = None
        if getattr(self.planner, "map_conditioned", False):
            m = self.planner.config.model
            map_input = _planning_map(self.grid, self.risk_map, self.risk_severity_map, s.unknown_is_obstacle,
                                      self.planner.device, m.map_safe_distance, m.map_passable_clearance_m)
        return costmap, clearance, map_input

    def select_safe(self, result: PlanResult, request: _PlanRequest) -> tuple[PlanResult | None, tuple[str, ...]]:
        """Stage 4: the planner already chose the best-scoring candidate the collision check and the turn commitment
        admit (see `_admissible`); None when the check admitted none. Unchanged when neither restricts."""
        if result.admissible is None:
            return result, ()
        if not result.admissible.any():
            return None, ()
        if result.chosen_index == result.best_scoring:
            return result, ()
        kept = request.turn_sign != 0 and turns_against(result.candidate_actions[result.best_scoring], request.turn_sign)
        return result, ("pick_kept_turning",) if kept else ("pick_collided",)

    def held_turn(self, command: Command, request: _PlanRequest) -> Command | None:
        """Stage 4, the turn commitment's last word: where the command shaped from the candidate chosen would turn the
        robot back on the spot (every one the check admits does), keep turning the held way instead
        (turn_commitment.py). Judged on the shaped command, as `_admissible` judges the clipped ones. None otherwise."""
        if request.turn_sign == 0 or command.stop is not None or not turns_against(command.action, request.turn_sign):
            return None
        return Command(0.0, request.turn_sign * self.settings.max_angular_speed, events=command.events + ("held_turn",))

    def no_valid_control(self, request: _PlanRequest, result: PlanResult) -> Command:
        """Every candidate collides: the recovery (`recover`)."""
        return self.recover(request, StopReason.NO_VALID_CONTROL, f"all {len(result.candidates)} candidates collide")

    def stuck(self, request: _PlanRequest, now_s: float, distances: np.ndarray) -> Command | None:
        """The progress check, given the robot's goal distances (`_goal_distances`): the recovery's command while the
        robot is stuck, else None (the model plans)."""
        s = self.settings
        # Asked every tick, also while off (progress_timeout_s 0): the checker then restarts its window, so one switched
        # on at run time measures from then, not from before it was switched off.
        if not self.progress.stuck(request.state, distances, now_s, s.progress_radius_m, s.progress_timeout_s):
            return None
        return self.recover(request, StopReason.NO_PROGRESS, f"no progress: not {s.progress_radius_m:g} m closer to "
                            f"the goal in {s.progress_timeout_s:g} s")

    def recover(self, request: _PlanRequest, reason: StopReason, why: str) -> Command:
        """One slow step down the goal's free-space distance that the collision check admits (`recovery.py`), so the
        next replan starts from a state the model may plan better from; where none brings the robot closer, stay put
        and turn (in place, a round robot cannot hit anything) towards the heading whose step would, else towards the
        freest direction."""
        s, state = self.settings, request.state
        radius = s.robot_radius_m + s.collision_margin_m
        clearance = request.clearance if request.clearance is not None else \
            _clearance_map(self.grid, s.unknown_is_obstacle, self.planner.device)  # the check is off: the recovery checks
        try:  # a map the recovery cannot read (a risk layer off the costmap's grid, ...) leaves the turn to free space
            recovery_map = self.recovery_map(request)
            step = recovery_step(state, request.goal, clearance, recovery_map, radius, s.collision_lookahead_s,
                                 request.speed_limit, s.max_angular_speed, s.accel)
            # no step makes progress: the heading whose step would, if the robot faced it
            heading = None if step is not None else recovery_heading(state, request.goal, clearance, recovery_map,
                                                                     radius, s.collision_lookahead_s, s.accel)
        except Exception:
            step = heading = None
        if step is not None:
            return Command(*step, reason, f"{why}; recovering: a checked slow step towards the goal", plan=None)
        towards = "the way to the goal"
        if heading is None:
            heading, towards = clearance.freest_heading(state[:2]), "free space"
        error = math.remainder(heading - math.atan2(float(state[2]), float(state[3])), 2 * math.pi)
        w = s.max_angular_speed
        # No dead band: the heading's step was checked at that exact heading, and a robot left 0.09 rad short of it
        # (a 0.1 rad band) found no step there and stood still for 41 s (test map gen1000000, a 0.8 m gap by a
        # block's corner; at 0.07 rad short a step passed). The turn slows as it closes in, and ends where one does.
        omega = float(np.clip(2.0 * error, -w, w))
        # A robot still moving brakes as it turns: with a turn rate whose stop keeps clear of walls.
        omega = braking_turn(state, omega, clearance, radius, s.braking_s, s.accel, w)
        return Command(0.0, omega, reason, f"{why}; turning towards {towards}", plan=None)

    def recovery_map(self, request: _PlanRequest) -> PlanningMap:
        """The map whose goal distance a recovery step follows: the one a map-conditioned model reads, else one
        built from the same costmap and risk layer (with the risk-weighted distance, over the cells the robot fits)."""
        if request.map_input is not None:
            return request.map_input
        return _planning_map(self.grid, self.risk_map, self.risk_severity_map, self.settings.unknown_is_obstacle,
                             self.planner.device, True, PASSABLE_CLEARANCE_M)

    def shape_command(self, result: PlanResult, request: _PlanRequest, events: tuple[str, ...] = ()) -> Command:
        """Stage 5: the chosen plan's first action, within the velocity limits; a non-finite one stops the robot."""
        v, omega = result.action.tolist()  # Python floats, as float() of each would give
        if not (math.isfinite(v) and math.isfinite(omega)):
            return Command.stopped(StopReason.PLAN_FAILED, f"planner action is not finite (v={v}, omega={omega})")
        limit, w = request.speed_limit, self.settings.max_angular_speed
        return Command(min(max(v, -limit), limit), min(max(omega, -w), w), plan=result, events=events)


def step_all(controllers: list[Controller], now_s: float, seed: int | None = None) -> list[Command]:
    """One tick of every controller; those that plan share one plan_batch call per (planner, settings, costmap).

    `seed` overrides the settings' noise seed for this tick (the evaluation's reproducible streams).
    """
    commands: list[Command | None] = [None] * len(controllers)
    groups: dict[tuple, list[tuple[int, _PlanRequest]]] = {}
    # What the maps give (plan_maps) and the robot's group, found once per (planner, settings, costmap, risk layer)
    # this tick rather than once per robot: an evaluation ticks a thousand robots on one map. The objects are
    # held by the controllers for the whole tick, so their ids stay theirs.
    shared: dict[tuple, tuple] = {}
    requests: list[tuple[int, tuple, _PlanRequest]] = []  # (robot, its inputs' key in `shared`, its plan request)
    for i, c in enumerate(controllers):
        stop, state = c.check_inputs(now_s)
        commands[i] = stop or c.goal_reached(now_s)
        if commands[i] is not None:  # stopped for its inputs or arrived: no window of progress runs
            c.progress.reset()
        else:
            inputs = (id(c.planner), id(c.settings), id(c.grid), id(c.risk_map), id(c.risk_severity_map))
            if inputs not in shared:
                try:  # building what the planner needs from the maps (a risk map that does not fit the costmap, ...)
                    maps = c.plan_maps()
                    key = (id(c.planner), c.settings, id(maps[0]), id(maps[2]))  # model_sampling is the planner's
                    shared[inputs] = maps, key, []
                except Exception as error:  # every robot on these inputs stops for the same reason
                    shared[inputs] = None, f"{type(error).__name__}: {error}", None
            maps, key, members = shared[inputs]
            if maps is None:  # they could not be built: `key` says why
                commands[i] = Command.stopped(StopReason.PLAN_FAILED, key)
                continue
            try:
                request = c.plan_request(state, maps)
            except Exception as error:
                commands[i] = Command.stopped(StopReason.PLAN_FAILED, f"{type(error).__name__}: {error}")
                continue
            requests.append((i, inputs, request))
    distances = _goal_distances(controllers, requests)
    for i, inputs, request in requests:
        commands[i] = controllers[i].stuck(request, now_s, distances[i])
        if commands[i] is not None:
            continue
        maps, key, members = shared[inputs]
        if not members:  # the first robot of these inputs to plan: its group joins (or is) the groups' order here
            members = groups.setdefault(key, members)
            shared[inputs] = maps, key, members
        members.append((i, request))
    for members in groups.values():
        first = controllers[members[0][0]]
        s = first.settings
        tick_seed = seed if seed is not None else (None if s.seed < 0 else s.seed)
        try:
            planner = first.planner
            wanted = s.sampling(first.model_sampling)
            if any(getattr(planner.config.planner, name) != value for name, value in wanted.items()):
                planner.configure(**wanted)
            unsafe = _plan_and_select(controllers, members, commands, tick_seed, None, ())
            k = planner.config.planner.candidates
            more = min(k * s.collision_resample_factor, MAX_CANDIDATES)
            if unsafe and more > k:
                unsafe = _plan_and_select(controllers, [(i, r) for i, r, _ in unsafe], commands, tick_seed, more,
                                          ("resampled",))
        except Exception as error:  # a failed replan must not kill the caller: stop, say why, retry next tick
            for i, _ in members:
                commands[i] = Command.stopped(StopReason.PLAN_FAILED, f"{type(error).__name__}: {error}")
            continue
        for i, request, result in unsafe:
            commands[i] = controllers[i].no_valid_control(request, result)
    for c, command in zip(controllers, commands):  # what carry_plan keeps: only a plan that is being executed
        c.last_plan = command.plan.plan if command.plan is not None and command.stop is None else None
    for i, _, request in requests:  # the robots that got to planning: where their in-place turns begin
        c, command = controllers[i], commands[i]
        c.turning.executed(request.state, command.v, command.omega, c.settings.turn_commitment_m)
    return commands


MAX_CANDIDATES = 1024


def _goal_distances(controllers, requests) -> dict[int, np.ndarray]:
    """Each planning robot's distances to its goal along free space ([plain, risk-weighted] on the map its recovery
    follows, then, where its planner offers route candidates, the two ways they follow; inf where its cell reads none,
    or the map cannot be read): what the progress check measures. A robot following the way round risk moves away
    from the goal along the other two where that way is much the longer one (test map gen1000045: the check fired
    on it and the recovery drove the robot back). One lookup per map, route margin and goal cell, one copy to the host
    per map (an evaluation ticks a thousand robots on one map). A robot whose map cannot be read gets as many inf
    as a read would give: the checker restarts its window when the width changes, so a read failing every other
    tick would otherwise keep the check from ever firing."""
    out: dict[int, np.ndarray] = {}
    by_map: dict[tuple, tuple[PlanningMap, float | None, list]] = {}
    for i, _, request in requests:
        c = controllers[i]
        sampling = c.settings.sampling(c.model_sampling)
        margin = sampling["route_risk_margin_m"] if sampling["route_candidates"] > 0 else None
        # recovery_map's width: the model's map's, else a built one's, which has the risk-weighted distance
        width = (request.map_input.distance_count(margin) if request.map_input is not None
                 else 2 + 2 * (margin is not None))
        out[i] = np.full(width, np.inf)
        if c.settings.progress_timeout_s <= 0:
            continue
        try:
            planning_map = c.recovery_map(request)
        except Exception:  # a risk layer off the costmap's grid, ...: movement counts instead (progress_checker.py)
            continue
        by_map.setdefault((id(planning_map), margin), (planning_map, margin, []))[2].append((i, request))
    for planning_map, margin, members in by_map.values():
        try:
            values = planning_map.distances_at([r.goal for _, r in members], [r.state[:2] for _, r in members], margin)
        except Exception:
            continue
        for (i, _), d in zip(members, values):
            out[i] = np.where(d < UNREACHABLE / 2, d, np.inf)
    return out


def _plan_and_select(controllers, members, commands, seed, candidates, events) -> list:
    """One batched plan for `members` [(index, request)], the collision check choosing among the candidates;
    fills `commands` for those with a safe candidate and returns the rest as [(index, request, result)]."""
    c0, r0 = controllers[members[0][0]], members[0][1]
    s = c0.settings
    results = c0.planner.plan_batch(np.stack([r.state for _, r in members]), np.stack([r.goal for _, r in members]),
                                    s.alpha, s.risk_mode, r0.costmap, seed=seed, candidates=candidates,
                                    admissible=_admissible(s, r0.clearance, members, c0.planner.config.model.plan_stride),
                                    map_input=r0.map_input,
                                    carried=_carried(members))
    unsafe = []
    for (i, request), result in zip(members, results):
        if not all(map(math.isfinite, result.action.tolist())):  # a diverged model: no candidate is to be trusted
            commands[i] = controllers[i].shape_command(result, request)
            continue
        safe, picked = controllers[i].select_safe(result, request)
        if safe is None:
            unsafe.append((i, request, result))
        else:
            command = controllers[i].shape_command(safe, request, events + picked)
            commands[i] = controllers[i].held_turn(command, request) or command
    return unsafe


def _carried(members) -> np.ndarray | None:
    """The members' carried plans [B, H, D] for plan_batch (NaN for a robot with none), or None if no robot has one."""
    plans = [r.carried for _, r in members]
    known = next((p for p in plans if p is not None), None)
    if known is None:
        return None
    return np.stack([np.full_like(known, np.nan) if p is None else p for p in plans])


def _admissible(s: ControllerSettings, clearance: ClearanceMap | None, members, plan_stride: int = 1):
    """plan_batch's `admissible` predicate (run on the planner's device, all robots of a group at once; a group
    shares its settings and costmap, hence its clearance map): the collision check, and the turn commitment where
    it leaves a robot some candidate the check admits (where it leaves none, the check's choice stands here and
    `Controller.held_turn` keeps the robot turning instead). None when neither restricts anything."""
    signs = np.array([r.turn_sign for _, r in members], dtype=np.float32)
    if clearance is None and not signs.any():
        return None
    states = np.stack([r.state for _, r in members])
    limits = np.array([r.speed_limit for _, r in members], dtype=np.float32)[:, None]

    def check(plans, actions):
        device = plans.device
        speed = torch.as_tensor(limits, device=device)
        commands = torch.nan_to_num(torch.stack([torch.maximum(torch.minimum(actions[..., 0], speed), -speed),
                                                 actions[..., 1].clamp(-s.max_angular_speed, s.max_angular_speed)],
                                                -1), nan=0.0)
        safe = torch.ones(commands.shape[:-1], dtype=torch.bool, device=device) if clearance is None else \
            safe_candidates(clearance, torch.as_tensor(states, device=device), plans[..., :2], commands,
                            s.robot_radius_m + s.collision_margin_m, s.collision_lookahead_s, s.collision_horizon_s,
                            plan_step_s(plan_stride), s.accel, s.stop_rollout)
        kept = safe & ~turns_against(commands, torch.as_tensor(signs, device=device)[:, None])
        return torch.where(kept.any(-1, keepdim=True), kept, safe)
    return check


# What is derived from a map, built once per map and setting and shared by every robot on it (robots on one
# map then share one batched plan call): key (kind, id(grid), settings...) -> (grid, derived). The grid is
# kept alive with its entry, so its id is not reused while the entry lasts.
_PER_MAP: dict[tuple, tuple[object, object]] = {}


def _per_map(grid, key: tuple, build):
    key = (id(grid), *key)
    hit = _PER_MAP.get(key)
    if hit is not None and hit[0] is grid:
        return hit[1]
    if len(_PER_MAP) >= 16:
        _PER_MAP.pop(next(iter(_PER_MAP)))
    derived = build()
    _PER_MAP[key] = (grid, derived)
    return derived


def _clearance_map(grid, unknown_is_obstacle: bool, device) -> ClearanceMap:
    """The collision check's clearance grid of `grid` on `device` (building it takes ~0.2 s)."""
    return _per_map(grid, ("clearance", unknown_is_obstacle, str(device)),
                    lambda: ClearanceMap(grid, unknown_is_obstacle, device))


def _planning_map(grid, risk_map, severity_map, unknown_is_obstacle: bool, device, safe_distance: bool,
                  passable_clearance_m: float) -> PlanningMap:
    """The map layers a map-conditioned model reads (costmap + risk layer and its severity), on the planner's device;
    its goal distance fields are cached inside, so robots on one map share them."""
    key = ("planning_map", id(risk_map), id(severity_map), unknown_is_obstacle, str(device), safe_distance,
           passable_clearance_m)
    return _per_map(grid, key, lambda: PlanningMap.from_grids(grid, risk_map, unknown_is_obstacle=unknown_is_obstacle,
                                                                device=device, safe_distance=safe_distance,
                                                                passable_clearance_m=passable_clearance_m,
                                                                severity_grid=severity_map))


def _inflated(grid, radius: float, unknown_is_obstacle: bool) -> Costmap:
    """The inflated Costmap of `grid` for the planner's obstacle term."""
    return _per_map(grid, ("costmap", radius, unknown_is_obstacle),
                    lambda: Costmap.from_grid(grid, radius, unknown_is_obstacle))


def _kept_if_same(new, old):
    """`old` when `new` is a republication of it (same geometry and cells), else `new`. What is derived from a
    map (costmap, clearance grid, a map model's layers and goal fields) is cached per grid object, and the
    sim and map servers republish the same map every few seconds: keeping the object keeps those caches."""
    if old is None or new is old:
        return new
    same = (new.resolution == old.resolution and new.origin_x == old.origin_x and new.origin_y == old.origin_y
            and np.array_equal(new.data, old.data))
    return old if same else new


def _outside(xy, bounds) -> str:
    """Why point xy lies outside bounds (x_min, y_min, x_max, y_max), or ""."""
    x, y = float(xy[0]), float(xy[1])
    x_min, y_min, x_max, y_max = bounds
    if x_min <= x <= x_max and y_min <= y <= y_max:
        return ""
    return f"({x:.2f}, {y:.2f}) is not in [{x_min:g}, {x_max:g}] x [{y_min:g}, {y_max:g}]"


