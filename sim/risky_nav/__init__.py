"""RiskyNav: PyBullet risky-navigation simulation (gymnasium). Knows nothing of ROS.

Importing the package registers `gymnasium.make("RiskyNav-v0", layout="default")`.
"""
import gymnasium

from risky_nav.layout import Layout, LayoutError, available_layouts, load_layout
from risky_nav.occupancy import OccupancyGrid

ENV_ID = "RiskyNav-v0"

if ENV_ID not in gymnasium.registry:
    # No max_episode_steps here: the env truncates at its layout's own time limit.
    gymnasium.register(ENV_ID, entry_point="risky_nav.env:RiskyNavEnv")

__all__ = ["ENV_ID", "Layout", "LayoutError", "OccupancyGrid", "available_layouts", "load_layout"]
