"""RS-Diffuser algorithm: diffusion planner, inverse dynamics, distributional critic, risk guidance. No ROS imports.

Entry point for everything else: `RiskSensitivePlanner` (planner.py), returning `PlanResult`.
"""
from .checkpoint import CheckpointError
from .config import ConfigError, CoreConfig
from .costmap import Costmap
from .planner import PlanResult, RiskSensitivePlanner
from .risk import risk_measure

__all__ = ["CheckpointError", "ConfigError", "CoreConfig", "Costmap", "PlanResult", "RiskSensitivePlanner", "risk_measure"]
