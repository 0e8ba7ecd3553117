"""The planner node's parameters: declarations with descriptors and ranges, and their validation.

Ranges go into the descriptors (rclpy enforces them and tools like rqt show them); what a
range cannot express (alpha > 0, a choice among words, a checkpoint that exists) is checked
by `check_parameter`, which the node installs as its on-set-parameters callback, so a bad
`ros2 param set` is refused with a reason and the old value stays.
"""
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

import rs_diffuser_ros

RISK_MODES = ("averse", "seeking")
DEVICES = ("auto", "cuda", "cpu")
DEFAULT_CHECKPOINT = "models/default.safetensors"
# The value that means "the setting stored in the checkpoint" for each sampling parameter.
MODEL_OWN = {"candidates": 0, "ddim_steps": 0, "guidance_scale": -1.0}


def _float(description, low, high, read_only=False):
    return ParameterDescriptor(
        type=ParameterType.PARAMETER_DOUBLE, description=description, read_only=read_only,
        floating_point_range=[FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)])


def _int(description, low, high, read_only=False):
    return ParameterDescriptor(
        type=ParameterType.PARAMETER_INTEGER, description=description, read_only=read_only,
        integer_range=[IntegerRange(from_value=int(low), to_value=int(high), step=1)])


def _string(description, constraints="", read_only=False):
    return ParameterDescriptor(type=ParameterType.PARAMETER_STRING, description=description,
                               additional_constraints=constraints, read_only=read_only)


# name -> (default, descriptor). config/planner.yaml sets every one of them; these defaults
# only matter when the node is started without it. Declared in this order: `device` comes
# before `checkpoint` because validating a checkpoint means loading it onto the device.
PARAMETERS = {
    "alpha": (0.1, _float(
        "Risk level in (0, 1]: CVaR_alpha of the predicted return distribution guides and picks the plan; "
        "1.0 is risk-neutral (the mean).", 0.0, 1.0)),
    "risk_mode": ("averse", _string(
        "averse: lower tail (CVaR_alpha); seeking: upper tail. alpha = 1 is neutral in both.",
        "one of: " + ", ".join(RISK_MODES))),
    # The sampling settings default to the ones stored in the checkpoint (the model's own).
    "guidance_scale": (MODEL_OWN["guidance_scale"], _float(
        "Step size of the risk-gradient guidance during denoising (normalised units); 0 = unguided; "
        "-1 = the model's own setting.", MODEL_OWN["guidance_scale"], 1000.0)),
    "candidates": (MODEL_OWN["candidates"], _int(
        "Candidate plans sampled per replan, the best by rho_alpha executed; 0 = the model's own setting.", 0, 1024)),
    "ddim_steps": (MODEL_OWN["ddim_steps"], _int(
        "Denoising steps per replan (at most the model's diffusion steps); 0 = the model's own setting.", 0, 1000)),
    "seed": (-1, _int("Noise seed for every replan (same state -> same plan); -1: the planner's own stream.",
                      -1, 2**31 - 1)),
    "max_linear_speed": (0.5, _float("Clip on |cmd_vel.linear.x|, m/s.", 0.0, 10.0)),
    "max_angular_speed": (1.5, _float("Clip on |cmd_vel.angular.z|, rad/s.", 0.0, 20.0)),
    "odom_timeout_s": (0.5, _float("Odometry older than this -> zero velocity, s.", 0.01, 60.0)),
    "goal_tolerance_m": (0.3, _float("Distance to the goal at which the robot stops, m.", 0.01, 100.0)),
    "approach_slowdown_m": (0.6, _float(
        "Within this distance of the goal the linear speed limit shrinks in proportion to the distance, m; "
        "0 = off.", 0.0, 100.0)),
    "min_approach_speed": (0.1, _float("Floor of that shrinking speed limit, m/s.", 0.0, 10.0)),
    "use_costmap": (True, ParameterDescriptor(
        type=ParameterType.PARAMETER_BOOL,
        description="Pass the received /costmap to the planner's obstacle term.")),
    "costmap_inflation_m": (0.5, _float("Obstacle cost decays to 0 over this distance, m.", 0.0, 10.0)),
    "replan_rate_hz": (10.0, _float("Replanning timer rate, Hz (set at start-up).", 0.1, 100.0, read_only=True)),
    "device": ("auto", _string("Torch device: auto (cuda when available), cuda or cpu (set at start-up).",
                               "one of: " + ", ".join(DEVICES), read_only=True)),
    "torch_threads": (0, _int("CPU threads torch may use (set at start-up); 0: torch's default. On a CPU shared "
                              "with other processes 1-2 avoids thread thrashing.", 0, 256, read_only=True)),
    "checkpoint": ("", _string(
        "Model file (.safetensors); empty: the package's default model. A path that does not load is refused.")),
    "global_frame": ("odom", _string("Frame of odometry, goals and published plans (set at start-up).",
                                     read_only=True)),
}


def declare_planner_parameters(node) -> None:
    node.declare_parameters("", [(name, default, descriptor) for name, (default, descriptor) in PARAMETERS.items()])


def check_parameter(name: str, value) -> Optional[str]:
    """Why `value` is not acceptable for parameter `name`, or None when it is.

    Ranges and types are the descriptors' job (rclpy checks them first); this covers the rest.
    """
    if name == "alpha" and not value > 0.0:
        return f"alpha must be in (0, 1], got {value}: alpha = 0 selects no quantile at all"
    if name == "guidance_scale" and value < 0.0 and value != MODEL_OWN["guidance_scale"]:
        return f"guidance_scale must be >= 0, or -1 for the model's own setting, got {value}"
    if name == "risk_mode" and value not in RISK_MODES:
        return f"risk_mode must be one of {', '.join(RISK_MODES)}, got '{value}'"
    if name == "device":
        if value not in DEVICES:
            return f"device must be one of {', '.join(DEVICES)}, got '{value}'"
        if value == "cuda":
            import torch

            if not torch.cuda.is_available():
                return "device is 'cuda' but torch sees no CUDA device here (use auto or cpu)"
    if name == "checkpoint" and value:
        path = Path(value).expanduser()
        if not path.is_file():
            return f"checkpoint '{value}' does not exist or is not a file"
    return None


def default_checkpoint_path() -> Path:
    """The model shipped inside the installed Python package (rs_diffuser_ros/models/default.safetensors).

    importlib.resources finds the copy next to the imported package; when the source tree and
    the install both provide the package (see rs_diffuser_ros/__init__.py), look in each.
    """
    candidates = [Path(str(resources.files("rs_diffuser_ros") / DEFAULT_CHECKPOINT))]
    candidates += [Path(p) / DEFAULT_CHECKPOINT for p in rs_diffuser_ros.__path__]
    for path in candidates:
        if path.is_file():
            return path
    return candidates[0]


def resolve_checkpoint(value: str) -> Path:
    return Path(value).expanduser() if value else default_checkpoint_path()


@dataclass(frozen=True)
class PlannerSettings:
    """The parameter values one replan uses, read together so a replan never mixes old and new."""

    alpha: float
    risk_mode: str
    guidance_scale: float
    candidates: int
    ddim_steps: int
    seed: int
    max_linear_speed: float
    max_angular_speed: float
    odom_timeout_s: float
    goal_tolerance_m: float
    approach_slowdown_m: float
    min_approach_speed: float
    use_costmap: bool
    costmap_inflation_m: float

    @classmethod
    def from_node(cls, node) -> "PlannerSettings":
        return cls(**{name: node.get_parameter(name).value for name in cls.__dataclass_fields__})

    def sampling(self, model_own: dict) -> dict:
        """candidates / ddim_steps / guidance_scale to sample with: ours, or the model's where ours says so."""
        return {name: model_own[name] if getattr(self, name) == MODEL_OWN[name] else getattr(self, name)
                for name in MODEL_OWN}
