"""The state and goal layout is the model config's (model.state_dim, model.goal_dim), not the robot's:
a model of another layout builds, trains and plans; the navigation layout stays the default and files
written before the fields existed read as it."""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.checkpoint import read_checkpoint, save_checkpoint
from rs_diffuser_ros.core.config import ConfigError, CoreConfig, ModelConfig
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.core.plan_frame import relative_goal
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import train
from rs_diffuser_ros.core.training.windows import WindowDataset
from rs_diffuser_ros.shipped import DEFAULT_LAYOUT_MODEL, model_path

TOLERANCE = 0.3  # the third goal number of the 4-d layout below


def four_d_episodes(n: int) -> list[dict]:
    """The unicycle episodes in another layout: state [x, y, v, omega] (4), goal [goal_x, goal_y, tolerance] (3)."""
    out = []
    for ep in synthetic_episodes(n):
        obs = ep["observations"]
        tolerance = np.full((len(obs), 1), TOLERANCE, np.float32)
        out.append({**ep, "observations": np.concatenate([obs[:, [0, 1, 4, 5]], obs[:, 6:], tolerance], 1)})
    return out


def four_d_config(**training) -> CoreConfig:
    config = tiny_config(**training)
    config.model.state_dim, config.model.goal_dim = 4, 3
    return config.validate()


def test_a_4d_state_model_builds_trains_and_plans_with_its_shapes(tmp_path):
    config = four_d_config(steps=6, checkpoint_every=100)
    nets = build_networks(config.model)
    assert nets["inverse_dynamics"](torch.zeros(5, 4), torch.zeros(5, 4)).shape == (5, 2)
    episodes = four_d_episodes(4)
    summary = train(config, episodes, tmp_path, seed=0, device="cpu", progress=False)
    assert summary["steps"] == 6 and all(np.isfinite(v) for v in summary["final_losses"].values())

    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    assert (planner.state_dim, planner.goal_dim) == (4, 3)
    norm = planner.normalizers
    assert norm.plan.low.shape == (4,) and norm.goal.low.shape == (3,) and norm.action.low.shape == (2,)
    # Only the goal's position is made relative to the start: the third number is fitted as it is.
    assert float(norm.goal.low[2]) == pytest.approx(TOLERANCE) and float(norm.goal.high[2]) == pytest.approx(TOLERANCE)
    obs = episodes[0]["observations"][:3]
    k, h = config.planner.candidates, config.model.horizon
    for fast in (True, False):  # the fast path and the reference both draw windows of the model's width
        planner.set_execution(fast=fast)
        results = planner.plan_batch(obs[:, :4], obs[:, 4:], 0.1, seed=0)
        assert len(results) == 3
        for state, r in zip(obs[:, :4], results):
            assert r.plan.shape == (h, 4) and r.candidates.shape == (k, h, 4) and r.action.shape == (2,)
            assert r.candidate_actions.shape == (k, 2) and r.quantiles.shape == (config.model.n_quantiles,)
            np.testing.assert_array_equal(r.plan[0], state)
            assert np.isfinite(r.candidates).all() and np.isfinite(r.action).all()
    with pytest.raises(ValueError, match=r"state must have shape \[4\]"):
        planner.plan(np.zeros(6), obs[0, 4:], 0.1)
    with pytest.raises(ValueError, match=r"goal must have shape \[3\]"):
        planner.plan(obs[0, :4], obs[0, 4:6], 0.1)


def test_the_dataset_must_have_the_models_layout():
    with pytest.raises(ValueError, match=r"must be \[T\+1, 7\] \(model.state_dim 4 \+ model.goal_dim 3\)"):
        WindowDataset.from_episodes(synthetic_episodes(1), horizon=8, gamma=1.0, state_dim=4, goal_dim=3)
    data = WindowDataset.from_episodes(four_d_episodes(2), horizon=8, gamma=1.0, state_dim=4, goal_dim=3)
    assert data.states.shape[1] == 4 and data.goals.shape[1] == 3


def test_the_navigation_layout_is_the_default():
    m = ModelConfig()
    assert (m.state_dim, m.goal_dim, m.context_dim) == (6, 2, 4)
    assert CoreConfig.from_dict({"model": {"map_patch_cells": 32, "map_embedding": 64}}).model.context_dim == 66
    assert Normalizers.untrained_defaults().plan.low.shape == (6,)
    start, goal = torch.tensor([[1.0, 2.0, 0.0, 1.0, 0.5, 0.1]]), torch.tensor([[4.0, -1.0]])
    assert torch.equal(relative_goal(goal, start), goal - start[:, :2])
    for bad in ({"state_dim": 1}, {"goal_dim": 0}):
        with pytest.raises(ConfigError, match="model." + next(iter(bad))):
            CoreConfig.from_dict({"model": bad})


def test_a_shipped_file_without_the_fields_reads_as_the_navigation_layout_and_plans_as_an_explicit_one(tmp_path):
    with safe_open(str(model_path(DEFAULT_LAYOUT_MODEL)), framework="pt") as f:
        assert "state_dim" not in json.loads(f.metadata()["config"])["model"]  # written before the fields existed
    shipped = read_checkpoint(model_path(DEFAULT_LAYOUT_MODEL))[0].model
    assert (shipped.state_dim, shipped.goal_dim) == (6, 2)

    config = tiny_config()
    torch.manual_seed(0)
    networks = build_networks(config.model)
    explicit = save_checkpoint(tmp_path / "explicit.safetensors", config, Normalizers.untrained_defaults(), networks)
    old = tmp_path / "old.safetensors"
    with safe_open(str(explicit), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    stored = json.loads(metadata["config"])
    assert (stored["model"].pop("state_dim"), stored["model"].pop("goal_dim")) == (6, 2)
    save_file(tensors, str(old), metadata={**metadata, "config": json.dumps(stored)})

    state, goal = np.array([0.5, -1.0, 0.0, 1.0, 0.2, 0.0], np.float32), np.array([3.0, 2.0], np.float32)
    a, b = (RiskSensitivePlanner.from_checkpoint(p, device="cpu").plan(state, goal, 0.1, seed=3) for p in (explicit, old))
    np.testing.assert_array_equal(a.candidates, b.candidates)
    np.testing.assert_array_equal(a.action, b.action)
