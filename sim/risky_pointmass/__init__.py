"""Risky PointMass: CODAC's toy risk benchmark (Ma et al. 2021) as a gymnasium env. Knows nothing of ROS.

Importing the package registers `gymnasium.make("RiskyPointMass-v0")`.
"""
import gymnasium

ENV_ID = "RiskyPointMass-v0"

if ENV_ID not in gymnasium.registry:
    # No max_episode_steps here: the env truncates at its own 100-step limit.
    gymnasium.register(ENV_ID, entry_point="risky_pointmass.env:RiskyPointMassEnv")

__all__ = ["ENV_ID"]
