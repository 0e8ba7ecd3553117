"""One robot driven closed loop by the shipped controller (eval.policies.ControllerPolicy, as the evaluation drives it)
in risky_nav, from a chosen state: the tests that replay a traced situation."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from risky_nav.env import RiskyNavEnv

from rs_diffuser_ros.control import Command
from rs_diffuser_ros.eval.policies import ControllerPolicy, published_grids


@dataclass
class Tick:
    command: Command  # what the controller decided
    obs: np.ndarray  # the observation after the step
    info: dict  # the env's info of the step (collision, goal_reached, ...)


def drive(planner, settings, layout, start, goal, steps: int, env_seed: int = 0, planner_seed: int = 0,
          velocity: tuple[float, float] | None = None, severity: bool = True) -> list[Tick]:
    """The ticks of `steps` control steps at most (fewer when the episode ends) from start [x, y, yaw] towards goal.
    velocity: (v, omega) the robot already has there (reset leaves it standing); severity: publish the layout's
    severity layer to the controller as the evaluation does (False: the risk layer alone)."""
    grid, risk, severity_grid = published_grids(layout)
    env = RiskyNavEnv(layout)
    try:
        obs, _ = env.reset(seed=env_seed, options={"start": start, "goal": goal})
        if velocity is not None:
            env._v, env._omega = velocity
            obs = env._observation()
        policy = ControllerPolicy(planner, settings, grid, 1, seed=planner_seed, risk_grid=risk,
                                  severity_grid=severity_grid if severity else None)
        policy.reset(0, obs)
        ticks = []
        for _ in range(steps):
            action = policy.act(obs[None], [0])[0]
            command = policy.last_commands[0]
            obs, _, terminated, truncated, info = env.step(action)
            ticks.append(Tick(command, obs, info))
            if terminated or truncated:
                break
        return ticks
    finally:
        env.close()


def touched(ticks: list[Tick]) -> int:
    """Steps that ended touching something."""
    return sum(bool(t.info.get("collision")) for t in ticks)
