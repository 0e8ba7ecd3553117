"""What decides the robot's command, ROS-free: the planner node and the evaluation both drive it.

`Controller` (controller.py) runs a tick's stages; `ControllerSettings` (settings.py) holds the
values one tick uses, each with its range and help declared once.
"""
from .controller import Command, Controller, Grid, StopReason, step_all
from .settings import ControllerSettings, settings_from_yaml

__all__ = ["Command", "Controller", "ControllerSettings", "Grid", "StopReason", "settings_from_yaml", "step_all"]
