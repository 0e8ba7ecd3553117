"""A critic that reads where a plan goes on after its window (model.critic_reads_continuation): trained on whether
the window's episode enters a risky region at or after its last state; the planner scores each candidate with the
label the denoiser was asked for (the route candidates: their way's)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rs_diffuser_ros.core.config import ConfigError
from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.models.per_step_critic import PerStepMapCritic
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import train
from rs_diffuser_ros.core.training.windows import WindowDataset
from test_core_helpers import synthetic_episodes, single_thread  # noqa: F401 (autouse fixture)
from test_core_map_input import grid_with, level_grid, map_config
from test_core_route_label import flagged_map_episodes


def _continuation_config(**training):
    cfg = map_config(**training)
    cfg.model.route_label, cfg.model.critic_kind, cfg.model.critic_reads_continuation = True, "per_step", True
    return cfg.validate()


def test_a_window_is_labelled_by_where_its_episode_goes_after_its_last_state():
    episodes = synthetic_episodes(n=1, seed=0, max_steps=12)
    t = len(episodes[0]["rewards"])
    assert t >= 8
    flags = np.zeros(t, bool)
    flags[5] = True  # in a risky region at step 5 only
    episodes[0]["in_risky_region"] = flags
    data = WindowDataset.from_episodes(episodes, horizon=4, gamma=1.0)  # window i holds observations i .. i + 3
    batch = data.batch(torch.arange(4))
    assert batch["goes_into_risk"].tolist() == [1.0, 1.0, 1.0, 1.0]  # every one of them goes into it at some point ...
    assert batch["goes_on_into_risk"].tolist() == [1.0, 1.0, 1.0, 0.0]  # ... window 3 inside its window, not after
    last = data.batch(torch.tensor([t - 1]))  # a window clamped at the episode's end reads its last step's flag
    assert last["goes_on_into_risk"].tolist() == [0.0]


def test_the_continuation_needs_the_route_label_and_the_per_step_critic():
    cfg = map_config()
    cfg.model.critic_kind, cfg.model.critic_reads_continuation = "per_step", True
    with pytest.raises(ConfigError, match="critic_reads_continuation needs model.route_label"):
        cfg.validate()
    cfg = map_config()
    cfg.model.route_label, cfg.model.critic_reads_continuation = True, True
    with pytest.raises(ConfigError, match="critic_kind per_step"):
        cfg.validate()


def test_the_critic_reads_the_label_and_refuses_a_context_without_it():
    torch.manual_seed(0)
    critic = PerStepMapCritic(horizon=8, state_dim=6, context_dim=10, along_channels=5, n_quantiles=16,
                              read_context=2, reads_continuation=True)
    window, noise, along = torch.randn(4, 8, 6), torch.rand(4), torch.zeros(4, 8, 5)
    context = torch.randn(4, 11)
    with_label = critic(window, context, noise, along)
    flipped = context.clone()
    flipped[:, -1] = 1.0 - flipped[:, -1]
    assert not torch.allclose(critic(window, flipped, noise, along), with_label, atol=1e-4)
    ignored = context.clone()
    ignored[:, 2:10] = 5.0  # the map embedding is not read (read_context=2)
    assert torch.equal(critic(window, ignored, noise, along), with_label)
    with pytest.raises(ValueError, match="context of 11 numbers"):
        critic(window, context[:, :10], noise, along)


def test_the_planner_scores_each_half_with_its_own_label():
    occ = grid_with()
    pm = PlanningMap.from_grids(occ, level_grid(occ, [(-1.0, -3.0, 1.0, 1.5)]))
    state, goal = [-2.5, 0.0, 0.0, 1.0, 0.0, 0.0], [2.5, 0.0]
    cfg = _continuation_config()
    cfg.planner.candidates, cfg.planner.guidance_scale = 8, 0.0  # unguided: the plans do not depend on the critic
    torch.manual_seed(5)
    nets = build_networks(cfg.model)
    planner = RiskSensitivePlanner(cfg, nets, Normalizers.untrained_defaults(cfg.model), "cpu")
    label_column = nets["critic"].head[0].in_features - 2  # [pooled, goal, label, noise level]
    with torch.no_grad():
        nets["critic"].head[0].weight[:, label_column] = 0.0
    before = planner.plan(state, goal, seed=0, map_input=pm)
    with torch.no_grad():
        nets["critic"].head[0].weight[:, label_column] = 3.0
    after = planner.plan(state, goal, seed=0, map_input=pm)
    np.testing.assert_allclose(after.candidates, before.candidates, atol=1e-6)
    np.testing.assert_allclose(after.risk_values[:4], before.risk_values[:4], atol=1e-5)  # label 0: unchanged
    assert np.abs(after.risk_values[4:] - before.risk_values[4:]).min() > 1e-3  # label 1: every one moved


def test_a_map_model_trains_a_continuation_critic(tmp_path):
    maps, episodes = flagged_map_episodes()
    summary = train(_continuation_config(steps=6, checkpoint_every=100), episodes, tmp_path, seed=0, device="cpu",
                    progress=False, maps=maps)
    assert summary["steps"] == 6
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    assert planner.config.model.critic_reads_continuation
    assert planner.critic.context_dim == planner.config.model.context_dim + 1
