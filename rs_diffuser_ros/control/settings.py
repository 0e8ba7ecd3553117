"""The controller's settings: what the `planner` node exposes as parameters and the evaluation reads
from config/planner.yaml. Each field's range, help and dynamic flag live here (setting_spec); the
risk settings share the core's own (PlannerConfig) spec.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import yaml

from rs_diffuser_ros.core.config import CoreConfig, PlannerConfig, route_candidates_problem
from rs_diffuser_ros.shipped import planner_yaml
from rs_diffuser_ros.core.setting_spec import check_field, check_fields, like, setting, specs

# The value that means "the setting stored in the checkpoint" for each sampling override.
MODEL_OWN = {"candidates": 0, "ddim_steps": 0, "guidance_scale": -1.0, "route_candidates": -1,
             "route_risk_margin_m": -1.0}


@dataclass(frozen=True)
class ControllerSettings:
    """One consistent set of values for one control tick (a tick never mixes old and new)."""

    # Risk: CVaR_alpha of the critic's return distribution guides and selects the plan.
    alpha: float = like(PlannerConfig, "alpha")
    risk_mode: str = like(PlannerConfig, "risk_mode")
    # Sampling overrides; the sentinel (MODEL_OWN) means the checkpoint's own setting.
    guidance_scale: float = like(PlannerConfig, "guidance_scale", MODEL_OWN["guidance_scale"],
                                 help=PlannerConfig.__dataclass_fields__["guidance_scale"].metadata["spec"].help
                                 + " -1 = the model's own setting.", allowed=(MODEL_OWN["guidance_scale"],))
    candidates: int = like(PlannerConfig, "candidates", MODEL_OWN["candidates"], low=0,
                           help="Candidate plans sampled per replan, the best by rho_alpha executed; 0 = the model's own.")
    ddim_steps: int = like(PlannerConfig, "ddim_steps", MODEL_OWN["ddim_steps"], low=0,
                           help="Denoising steps per replan (at most the model's diffusion steps); 0 = the model's own.")
    route_candidates: int = like(PlannerConfig, "route_candidates", MODEL_OWN["route_candidates"], low=-1,
                                help=PlannerConfig.__dataclass_fields__["route_candidates"].metadata["spec"].help
                                + " -1 = the model's own.")
    route_risk_margin_m: float = like(PlannerConfig, "route_risk_margin_m", MODEL_OWN["route_risk_margin_m"],
                                      help=PlannerConfig.__dataclass_fields__["route_risk_margin_m"].metadata["spec"].help
                                      + " -1 = the model's own.", allowed=(MODEL_OWN["route_risk_margin_m"],))
    carry_plan: bool = setting(False, "Keep the plan executed last tick, moved on one step, as one of the candidates: the "
                               "critic keeps choosing it while nothing fresh scores higher (commitment over replans, as "
                               "MPPI's warm start).")
    seed: int = setting(-1, "Noise seed for every replan (same state -> same plan); -1: the planner's own stream.",
                        low=-1, high=2**31 - 1)
    turn_commitment_m: float = setting(0.05, "Once the robot turns in place one way, no candidate turning it in place "
                                       "the other way runs until it has moved this far from where it began turning, m "
                                       "(as Nav2 DWB's oscillation_reset_dist); 0 = off.", low=0.0, high=10.0)
    progress_radius_m: float = setting(0.25, "The robot must come this much closer to the goal (along free space) within "
                                       "progress_timeout_s, m; if not, it is stuck and the recovery drives until it "
                                       "has, for one more window at most, then the model again (Nav2's progress "
                                       "checker, measured towards the goal).", low=0.01, high=10.0)
    progress_timeout_s: float = setting(5.0, "The progress check's window, s (Nav2's movement_time_allowance); "
                                        "0 = no progress check.", low=0.0, high=600.0)
    # Command limits.
    max_linear_speed: float = setting(1.0, "Clip on |cmd_vel.linear.x|, m/s.", low=0.0, high=10.0)
    max_angular_speed: float = setting(2.0, "Clip on |cmd_vel.angular.z|, rad/s.", low=0.0, high=20.0)
    # The robot's acceleration limits: the collision check and the recovery roll a command out from the measured
    # velocity under them (Nav2 DWB's acc_lim_x / acc_lim_theta).
    max_linear_accel: float = setting(1.5, "The robot's linear acceleration limit, m/s^2: the collision check rolls "
                                      "each command out from the measured speed under it; 0 = the command at once.",
                                      low=0.0, high=100.0)
    max_angular_accel: float = setting(4.0, "The robot's angular acceleration limit, rad/s^2: the collision check "
                                       "rolls each command out from the measured turn rate under it; 0 = the command "
                                       "at once.", low=0.0, high=1000.0)
    goal_tolerance_m: float = setting(0.3, "Distance to the goal at which the robot stops, m.", low=0.01, high=100.0)
    approach_slowdown_m: float = setting(0.6, "Within this distance of the goal the linear speed limit shrinks in "
                                         "proportion to the distance, m; 0 = off.", low=0.0, high=100.0)
    min_approach_speed: float = setting(0.1, "Floor of that shrinking speed limit, m/s.", low=0.0, high=10.0)
    # Input safety.
    odom_timeout_s: float = setting(0.5, "Odometry older than this -> zero velocity, s.", low=0.01, high=60.0)
    odom_prediction: bool = setting(True, "Plan from where the robot will be when the command goes out: the last "
                                    "odometry moved on along its own velocity by its age (since it arrived) and by "
                                    "the median time a tick takes to plan; false: from the message as it is.")
    costmap_timeout_s: float = setting(5.0, "A costmap received longer ago than this -> zero velocity, s; 0 = a "
                                       "static map that never goes stale.", low=0.0, high=3600.0)
    use_costmap: bool = setting(True, "Pass the costmap to the planner's obstacle term.")
    costmap_inflation_m: float = setting(0.5, "Obstacle cost decays to 0 over this distance, m.", low=0.0, high=10.0)
    unknown_is_obstacle: bool = setting(True, "Unknown costmap cells (-1) count as obstacles (false: as free).")
    # The hard collision check (control/collision.py).
    collision_check: bool = setting(True, "Never execute a plan or a command the costmap says collides.")
    robot_radius_m: float = setting(0.2, "The robot's radius for the collision check, m.", low=0.01, high=5.0)
    collision_margin_m: float = setting(0.02, "Extra clearance the collision check demands beyond the radius, m.",
                                        low=0.0, high=1.0)
    collision_horizon_s: float = setting(1.5, "How much of each candidate plan is checked, s from now (the model's "
                                         "plans hold 3.1 s; 0 = only the command).", low=0.0, high=60.0)
    collision_lookahead_s: float = setting(0.5, "How long the command to execute is rolled out (held constant, from the "
                                           "measured velocity under the acceleration limits) for the collision check, "
                                           "s.", low=0.0, high=5.0)
    collision_stop_after_s: float = setting(0.1, "The command is also rolled out held this long (one command period, 1 / "
                                            "replan_rate_hz) and then braking to a stand under the acceleration limits, "
                                            "its turn rate held: it is executed only if that stop touches nothing too, so "
                                            "the robot never drives where it could no longer stop (the dynamic window's "
                                            "admissible velocities), s; 0 = off.", low=0.0, high=5.0)
    collision_resample_factor: int = setting(4, "When every candidate collides, sample once more with this many times "
                                             "the candidates (capped at 1024); 1 = no resampling.", low=1, high=32)

    @property
    def accel(self) -> tuple[float, float]:
        """(max_linear_accel, max_angular_accel): the limits a command is rolled out under (collision.unicycle_rollout)."""
        return self.max_linear_accel, self.max_angular_accel

    @property
    def braking_s(self) -> float:
        """How long a stand from the top speed takes under the acceleration limit (0: at once)."""
        return self.max_linear_speed / self.max_linear_accel if self.max_linear_accel > 0 else 0.0

    @property
    def stop_rollout(self) -> tuple[float, float] | None:
        """(hold_s, duration_s) of the collision check's stop (collision.safe_candidates), or None when it is off: the
        command held for collision_stop_after_s, then braking for as long as a stand from the top speed takes."""
        if self.collision_stop_after_s <= 0:
            return None
        return self.collision_stop_after_s, self.collision_stop_after_s + self.braking_s

    def check(self) -> str | None:
        """Why these values are not acceptable together, or None."""
        return check_fields(self) or self.check_with(None)

    def check_with(self, model: CoreConfig | None) -> str | None:
        """What the model of this config (a checkpoint's) cannot do with these values, or None."""
        if model is None:
            return None
        steps = model.model.diffusion_steps
        if self.ddim_steps > steps:
            return f"ddim_steps must be at most the model's diffusion steps ({steps}), got {self.ddim_steps}"
        own = {name: getattr(model.planner, name) for name in MODEL_OWN}
        return route_candidates_problem(model.model, dataclasses.replace(model.planner, **self.planner_fields(own)))

    def sampling(self, model_own: dict) -> dict:
        """The MODEL_OWN settings to plan with: ours, or the model's where ours says so."""
        return {name: model_own[name] if getattr(self, name) == MODEL_OWN[name] else getattr(self, name)
                for name in MODEL_OWN}

    def planner_fields(self, model_own: dict) -> dict:
        """What the core planner is configured with for a tick under these settings."""
        return {**self.sampling(model_own), "alpha": self.alpha, "risk_mode": self.risk_mode}


def check_setting(name: str, value) -> str | None:
    """Why `value` is not acceptable for setting `name`, or None (the node's on-set-parameters check)."""
    return check_field(ControllerSettings, name, value)


def settings_from_yaml(path: str | Path | None = None, node: str = "planner", **overrides) -> ControllerSettings:
    """The controller settings a node's YAML (ROS parameter file) gives, with `overrides` on top.

    Parameters of the node that are not controller settings (device, checkpoint, ...) are skipped.
    """
    path = planner_yaml() if path is None else Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    try:
        params = data[node]["ros__parameters"]
    except (KeyError, TypeError):
        raise ValueError(f"{path}: no '{node}: ros__parameters:' section") from None
    values = {name: params[name] for name in specs(ControllerSettings) if name in params}
    values.update(overrides)
    settings = ControllerSettings(**values)
    reason = settings.check()
    if reason:
        raise ValueError(f"{path}: {reason}")
    return settings
