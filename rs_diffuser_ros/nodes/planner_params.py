"""The planner node's parameters, derived from the settings' own specs (core/setting_spec.py).

The controller's settings (control/settings.py) are the dynamic parameters; the node's own
start-up settings (`NodeSettings`) are read-only ones. Ranges go into the descriptors (rclpy
enforces them and tools like rqt show them); what a range cannot express (alpha > 0, a choice
among words, a sentinel, a checkpoint that exists, a device that is there) is checked by
`check_parameter`, which the node installs as its on-set-parameters callback, so a bad
`ros2 param set` is refused with a reason and the old value stays.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

from rs_diffuser_ros.control.settings import ControllerSettings, check_setting
from rs_diffuser_ros.core.setting_spec import Spec, check_field, setting, specs
from rs_diffuser_ros.shipped import resolve_model

DEVICES = ("auto", "cuda", "cpu")


@dataclass(frozen=True)
class NodeSettings:
    """Read once at start-up (checkpoint excepted: a new one is loaded, validated, then swapped in)."""

    replan_rate_hz: float = setting(10.0, "Replanning timer rate, Hz (set at start-up).", low=0.1, high=100.0,
                                    dynamic=False)
    # Before `checkpoint`: validating a checkpoint means loading it onto the device.
    device: str = setting("auto", "Torch device: auto (cuda when available), cuda or cpu (set at start-up).",
                          choices=DEVICES, dynamic=False)
    torch_threads: int = setting(0, "CPU threads torch may use (set at start-up); 0: torch's default. On a CPU "
                                 "shared with other processes 1-2 avoids thread thrashing.", low=0, high=256, dynamic=False)
    torch_compile: bool = setting(False, "Run the replan through torch.compile, fused kernels (set at start-up): on an "
                                  "H200 a K = 64 replan takes 2.5 ms instead of 4.4; the first replan compiles (seconds "
                                  "to a minute, the robot waits). On a 2-core CPU 26.5 ms instead of 34.2 at K = 32, after a ~100 s compile.",
                                  dynamic=False)
    checkpoint: str = setting("", "Model file (.safetensors); empty: the package's default model, the general one "
                              "(any layout); a bare name (default, two_risks, ...): that shipped model. A path that does "
                              "not load is refused.")
    global_frame: str = setting("odom", "Frame of odometry, goals and published plans (set at start-up).", dynamic=False)


_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def descriptor(default, spec: Spec) -> ParameterDescriptor:
    """The ROS parameter descriptor of a spec'd setting: type, help, range, read-only."""
    d = ParameterDescriptor(type=_TYPES[type(default)], description=spec.help, read_only=not spec.dynamic)
    low = min([spec.low, *spec.allowed]) if spec.low is not None else None  # the range must admit the sentinels
    if isinstance(default, float) and low is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(spec.high), step=0.0)]
    elif isinstance(default, int) and not isinstance(default, bool) and low is not None:
        d.integer_range = [IntegerRange(from_value=int(low), to_value=int(spec.high), step=1)]
    elif spec.choices:
        d.additional_constraints = spec.range_text()
    return d


# name -> (default, spec): every parameter of the node, in declaration order.
PARAMETERS = {**specs(ControllerSettings), **specs(NodeSettings)}


def declare_planner_parameters(node) -> None:
    node.declare_parameters("", [(name, default, descriptor(default, spec)) for name, (default, spec) in PARAMETERS.items()])


def check_parameter(name: str, value) -> str | None:
    """Why `value` is not acceptable for parameter `name`, or None when it is."""
    if name in ControllerSettings.__dataclass_fields__:
        return check_setting(name, value)
    reason = check_field(NodeSettings, name, value)
    if reason:
        return reason
    if name == "device" and value == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "device is 'cuda' but torch sees no CUDA device here (use auto or cpu)"
    if name == "checkpoint" and value and not resolve_checkpoint(value).is_file():
        return f"checkpoint '{value}' does not exist or is not a file"
    return None


def controller_settings(node) -> ControllerSettings:
    """The controller settings the node's parameters hold now (one consistent set for a tick)."""
    return ControllerSettings(**{name: node.get_parameter(name).value for name in specs(ControllerSettings)})


def resolve_checkpoint(value: str) -> Path:
    return resolve_model(value)
