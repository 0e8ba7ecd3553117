"""A learned policy (observation -> command) behind the shipped controller: the `checked:` evaluation settings.

A baseline's own numbers (`bc`, `codac`, `oraac`) are its policy driving the robot directly, as the papers evaluate
them; map-conditioned behaviour cloning collides in about a third of the test maps' episodes that way. RS-Diffuser
runs behind the controller (control/controller.py): its collision check, its recovery when nothing passes, the
velocity clips. To tell a policy's risk choices from the missing safety layer, this offers the policy to the same
controller as a planner with one candidate: the policy's command, with no plan ahead (the plan is the robot's state),
so the check judges the command as it judges every command (held for the lookahead, and its stop), and where it
refuses, the controller's recovery drives, as it would for RS-Diffuser. Nothing of the policy changes.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from rs_diffuser_ros.core.config import ModelConfig, PlannerConfig
from rs_diffuser_ros.core.device import resolve_device
from rs_diffuser_ros.core.map_input import LEGACY_PASSABLE
from rs_diffuser_ros.core.planner import PlanResult


@dataclasses.dataclass
class _Config:
    """What the controller reads of a planner's config: the observation layout, how its map is built, the sampling."""

    model: ModelConfig
    planner: PlannerConfig


class PolicyPlanner:
    """`policy` (act(obs) -> actions, or act(obs, map_input) when `policy.map_conditioned`) as the controller's planner:
    one candidate a robot, the policy's command."""

    def __init__(self, policy, device="cpu"):
        self.policy = policy
        self.map_conditioned = bool(getattr(policy, "map_conditioned", False))
        self.device = resolve_device(device)
        if self.map_conditioned:
            self.policy = policy.to(self.device)
        # The map is built as the policy's own planning_map builds it (its safe distance, the one-cell passable rule).
        model = ModelConfig(state_dim=getattr(policy, "state_dim", ModelConfig.state_dim),
                            goal_dim=getattr(policy, "goal_dim", ModelConfig.goal_dim),
                            map_safe_distance=bool(getattr(policy, "map_safe_distance", False)),
                            map_passable_clearance_m=LEGACY_PASSABLE)
        self.config = _Config(model, PlannerConfig(candidates=1, route_candidates=0))
        self.own_planner_config = self.config.planner

    def configure(self, **fields) -> None:
        """The controller's sampling settings (candidates, DDIM steps, ...): kept, and meaningless to a policy."""
        self.config = dataclasses.replace(self.config, planner=dataclasses.replace(self.config.planner, **fields))

    def plan_batch(self, states, goals, alpha=None, risk_mode=None, costmap=None, seed=None, candidates=None,
                   admissible=None, map_input=None, carried=None) -> list[PlanResult]:
        """One PlanResult a robot: the policy's command for states [B, state_dim] and goals [B, goal_dim], its plan the
        state itself; `admissible` (the controller's check) says whether it may run. alpha, risk_mode, costmap,
        seed, candidates and carried are a planner's and mean nothing here."""
        t0 = time.perf_counter()
        states, goals = np.asarray(states, np.float32), np.asarray(goals, np.float32)
        m = self.config.model
        obs = np.concatenate([states[:, :m.state_dim], goals[:, :m.goal_dim]], 1)
        actions = np.asarray(self.policy.act(obs, map_input) if self.map_conditioned else self.policy.act(obs),
                             np.float32).reshape(len(states), -1)
        plans = states[:, None, None, :m.state_dim]  # [B, K = 1, H = 1, D]: no plan ahead, the command is checked
        allowed = None
        if admissible is not None:
            allowed = admissible(torch.as_tensor(plans, device=self.device),
                                 torch.as_tensor(actions[:, None], device=self.device)).cpu().numpy()
        latency_ms = (time.perf_counter() - t0) * 1e3
        zero = np.zeros(1, np.float32)
        return [PlanResult(actions[b], plans[b, 0], plans[b], zero, zero, 0, 0.0, zero, actions[b, None], latency_ms,
                           None if allowed is None else allowed[b], 0) for b in range(len(states))]
