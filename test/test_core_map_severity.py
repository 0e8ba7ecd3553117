"""model.map_severity: a model that reads the risk layer's severity (one event's size) as two more map channels."""
import numpy as np
import pytest
import torch
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)
from test_core_map_input import RES, _map_episodes, grid_with, level_grid, map_config

from rs_diffuser_ros.control import Controller, ControllerSettings, Grid
from rs_diffuser_ros.core.config import ConfigError
from rs_diffuser_ros.core.map_input import PATCH_CHANNELS
from rs_diffuser_ros.core.models.temporal_unet import TemporalUnet
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import train


def severity_config(**training):
    cfg = map_config(**training)
    cfg.model.map_route_channels = cfg.model.map_route_risk = cfg.model.map_severity = True
    return cfg.validate()


def test_the_severity_needs_the_route_risk_and_brings_the_model_to_every_channel():
    assert severity_config().model.map_channels == len(PATCH_CHANNELS) == 10
    cfg = map_config()
    cfg.model.map_route_channels = cfg.model.map_severity = True
    with pytest.raises(ConfigError, match="map_severity needs model.map_route_risk"):
        cfg.validate()


def test_a_denoiser_grown_to_the_severity_channels_denoises_as_before_until_trained():
    # 6 state numbers + 10 map channels = the first level's 16: the input block keeps its projected skip, so the
    # 8-channel model's weights load and the two new channels start at zero.
    torch.manual_seed(0)
    old = TemporalUnet(32, 6, 10, dim=16, dim_mults=(1, 2), map_channels=8)
    new = TemporalUnet(32, 6, 10, dim=16, dim_mults=(1, 2), map_channels=10)
    new.grow_from(old.state_dict())
    x, t, context = torch.randn(3, 32, 6), torch.tensor([0, 5, 50]), torch.randn(3, 10)
    along = torch.randn(3, 32, 10)
    assert torch.allclose(new(x, t, context, along), old(x, t, context, along[..., :8]), atol=1e-6)


def severity_maps():
    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    band = [(-1.0, -0.5, 1.0, 0.5)]
    return occ, {"m0": (occ, level_grid(occ, []), level_grid(occ, [])),
                 "m1": (occ, level_grid(occ, band, level=10), level_grid(occ, band, level=80))}


def test_a_severity_model_trains_and_its_controller_plans_on_the_severity_map(tmp_path):
    occ, maps = severity_maps()
    summary = train(severity_config(steps=4, checkpoint_every=100), _map_episodes(), tmp_path, seed=0, device="cpu",
                    progress=False, maps=maps)
    assert summary["steps"] == 4
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    assert planner.config.model.map_channels == 10
    c = Controller(planner, ControllerSettings(collision_check=False))
    c.set_goal((2.0, 0.0))
    c.on_costmap(occ, 0.0)
    c.on_risk_map(maps["m1"][1], 0.0)
    c.on_risk_severity_map(maps["m1"][2], 0.0)
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 0.0)
    command = c.step(0.0, seed=0)
    assert command.stop is None and np.isfinite([command.v, command.omega]).all()
    # The severity map reached the model's input: its channel reads level / 100 inside the band.
    layers = c.plan_maps()[2].layers.layers
    assert float(layers[0, 4].max()) == pytest.approx(0.8)
    # One on another grid than the costmap's stops the robot, naming it.
    c.on_risk_severity_map(Grid(np.zeros((10, 10), np.int8), RES, -4.0, -3.0), 0.1)
    c.on_odometry(np.array([-2, 0, 0, 1, 0, 0], np.float32), 0.1)
    command = c.step(0.1, seed=0)
    assert command.stop is not None and "risk severity map's geometry" in command.why
    assert (command.v, command.omega) == (0.0, 0.0)
