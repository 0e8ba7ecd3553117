"""Batch policies for lockstep evaluation, all with reset(slot, obs) / act(obs, slots).

The RS-Diffuser settings run through `ControllerPolicy`: one `rs_diffuser_ros.control.Controller`
per environment, the same controller and settings (config/planner.yaml) the planner node runs,
so an evaluation number measures what ships. All controllers plan in one batched call per step.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import astuple, dataclass, field
from typing import Callable

import numpy as np
from risky_nav.env import CONTROL_PERIOD
from risky_nav.occupancy import occupancy_grid, risk_grid, severity_grid
from risky_nav.policies import make_policy

from rs_diffuser_ros.control import Controller, ControllerSettings, Grid, StopReason, step_all
from rs_diffuser_ros.core.device import resolve_device


def published_grids(layout) -> tuple[Grid, Grid, Grid]:
    """The layout's occupancy, risk and severity grids as the sim node publishes them on /costmap, /risk_map and
    /risk_severity_map."""
    return tuple(Grid(*astuple(make(layout))) for make in (occupancy_grid, risk_grid, severity_grid))


@dataclass
class PolicyContext:
    """What a setting needs to build its policy in one worker."""

    config: object  # EvalConfig
    envs: object  # the worker's env batch (risky_nav.vector)
    layout: object  # risky_nav Layout
    grid: Grid  # the layout's occupancy grid, as the sim node publishes it on /costmap
    risk_grid: Grid  # the layout's risk layer, as the sim node publishes it on /risk_map
    severity_grid: Grid | None  # its severity, as published on /risk_severity_map
    stream: int  # this (setting, worker)'s noise seed
    load_planner: Callable[[], object]
    device: str = "cpu"  # the worker's torch device (the planner's; a map-conditioned learned policy's too)
    _planner: object = field(default=None, repr=False)

    def planner(self):
        """The worker's planner, loaded once and shared by its settings."""
        if self._planner is None:
            self._planner = self.load_planner()
        return self._planner

    def controller_policy(self, planner, settings: ControllerSettings) -> "ControllerPolicy":
        """The shipped controller with `planner` driving every env of the worker on the layout's published grids."""
        return ControllerPolicy(planner, settings, self.grid, len(self.envs), seed=self.stream,
                                risk_grid=self.risk_grid, severity_grid=self.severity_grid)


class ControllerPolicy:
    """The shipped controller driving every environment; plans for all of them in one batch per step.

    Time is the control step count times the control period: the odometry of step t arrives at t,
    and the static costmap counts as received every step (the sim node republishes it well inside
    costmap_timeout_s). The controller acts on each step's odometry in that same step, as the node
    does on the latest odometry at each tick; DDS latency is not modelled.
    """

    def __init__(self, planner, settings: ControllerSettings, grid: Grid, n_slots: int, seed: int = 0,
                 risk_grid: Grid | None = None, severity_grid: Grid | None = None):
        self.planner, self.settings, self.grid, self.risk_grid = planner, settings, grid, risk_grid
        self.severity_grid = severity_grid
        self.controllers = [self._fresh() for _ in range(n_slots)]
        # One noise seed per step, drawn from this stream: a run is reproducible for a given batching.
        self._seeds = np.random.default_rng(seed)
        self._steps = 0
        self.plan_calls = 0
        self.plan_seconds = 0.0
        self.stops: Counter[str] = Counter()  # stop reason -> commands (goal_reached and no_goal not counted)
        # stop reason -> the first such command's sentence: a failed plan's exception stays readable in the report
        self.stop_whys: dict[str, str] = {}
        self.last_commands: list = []  # the last act's Commands (with their plans): what eval.episode_trace reads

    def _fresh(self) -> Controller:
        return Controller(self.planner, self.settings)

    def reset(self, slot: int, obs: np.ndarray) -> None:
        self.controllers[slot] = controller = self._fresh()
        m = self.planner.config.model  # obs = [state, goal] in the model's layout
        controller.set_goal(obs[m.state_dim:m.state_dim + m.goal_dim])

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        now = self._steps * CONTROL_PERIOD
        self._steps += 1
        controllers = [self.controllers[s] for s in slots]
        state_dim = self.planner.config.model.state_dim
        for controller, o in zip(controllers, obs):
            controller.on_odometry(o[:state_dim], now, stamp_s=now)
            controller.on_costmap(self.grid, now)
            if self.risk_grid is not None:
                controller.on_risk_map(self.risk_grid, now)
            if self.severity_grid is not None:
                controller.on_risk_severity_map(self.severity_grid, now)
        # A fixed seed in the settings means the same as on the robot (same state -> same plan); else the
        # run's own stream gives each step a reproducible seed.
        seed = None if self.settings.seed >= 0 else int(self._seeds.integers(2**31 - 1))
        t0 = time.perf_counter()
        commands = step_all(controllers, now, seed=seed)
        self.plan_seconds += time.perf_counter() - t0
        self.plan_calls += 1
        self.last_commands = commands
        stopped = [c for c in commands if c.stop is not None and c.stop not in (StopReason.GOAL_REACHED, StopReason.NO_GOAL)]
        self.stops.update(c.stop.value for c in stopped)
        for c in stopped:
            self.stop_whys.setdefault(c.stop.value, c.why)
        # One array from the commands' numbers (what stacking each Command.action gives, without one array per robot).
        return np.array([(c.v, c.omega) for c in commands], dtype=np.float32).reshape(len(commands), 2)


class LearnedBatchPolicy:
    """A learned policy with act(observations [B, obs_dim]) -> actions [B, 2] (behaviour cloning, ...), one call
    for all environments per step. A map-conditioned one (`policy.map_conditioned`, e.g. map-conditioned behaviour
    cloning) is given the map as a map-conditioned planner is: the costmap and the risk layer the sim node
    publishes, as a PlanningMap (`policy.planning_map(grid, risk_grid, severity_grid)`, built once; goal distance fields cached
    per goal), `act(observations, map_input)`."""

    def __init__(self, policy, map_input=None):
        self.policy, self.map_input = policy, map_input

    @classmethod
    def in_context(cls, policy, context: PolicyContext) -> "LearnedBatchPolicy":
        """`policy` in a worker: a map-conditioned one on the worker's device with the layout's map."""
        if not getattr(policy, "map_conditioned", False):
            return cls(policy)
        policy = policy.to(resolve_device(context.device))
        return cls(policy, policy.planning_map(context.grid, context.risk_grid, context.severity_grid))

    def reset(self, slot: int, obs: np.ndarray) -> None:
        pass

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        if self.map_input is not None:
            return self.policy.act(obs, self.map_input)
        return self.policy.act(obs)


class ScriptedBatchPolicy:
    """One scripted risky_nav policy per environment slot (each follows its own A* route)."""

    def __init__(self, name: str, layout, n_slots: int, seed: int = 0):
        rngs = np.random.default_rng(seed).spawn(n_slots)
        self.policies = [make_policy(name, layout, rng) for rng in rngs]

    def reset(self, slot: int, obs: np.ndarray) -> None:
        self.policies[slot].reset(obs)

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        return np.stack([self.policies[s](o) for s, o in zip(slots, obs)])
