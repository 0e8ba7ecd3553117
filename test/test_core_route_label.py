"""The route label (model.route_label): the denoiser also reads whether a window's episode goes into a risky region;
the planner asks half its candidates for each value, and the critic, which never reads it, chooses."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rs_diffuser_ros.core.config import ConfigError
from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import load_grown, train
from rs_diffuser_ros.core.training.windows import WindowDataset
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)
from test_core_map_input import grid_with, level_grid, map_config


def _label_config(**training):
    cfg = map_config(**training)
    cfg.model.route_label = True
    return cfg.validate()


def test_windows_are_labelled_by_whether_their_episode_goes_on_into_risk():
    episodes = synthetic_episodes(n=2, seed=0, max_steps=6)
    for ep in episodes:
        ep["in_risky_region"] = np.zeros(len(ep["rewards"]), bool)
    episodes[0]["in_risky_region"][2] = True  # enters at step 2, out again after it
    data = WindowDataset.from_episodes(episodes, horizon=4, gamma=1.0)
    t0 = len(episodes[0]["rewards"])
    expected = [1.0] * 3 + [0.0] * (t0 - 3) + [0.0] * len(episodes[1]["rewards"])
    assert data.goes_into_risk.tolist() == expected
    assert data.batch(torch.tensor([0, 3]))["goes_into_risk"].tolist() == [1.0, 0.0]
    del episodes[1]["in_risky_region"]  # an episode without flags: no labels at all
    assert WindowDataset.from_episodes(episodes, horizon=4, gamma=1.0).goes_into_risk is None


def test_a_route_label_needs_a_map_model():
    cfg = tiny_config()
    cfg.model.route_label = True
    with pytest.raises(ConfigError, match="route_label needs a map-conditioned model"):
        cfg.validate()


def test_the_label_reaches_the_denoiser_only_and_splits_the_candidates_in_halves():
    occ = grid_with()
    pm = PlanningMap.from_grids(occ, level_grid(occ, [(-1.0, -3.0, 1.0, 1.5)]))
    state, goal = [-2.5, 0.0, 0.0, 1.0, 0.0, 0.0], [2.5, 0.0]
    plain_cfg, label_cfg = map_config(), _label_config()
    plain_cfg.planner.candidates = label_cfg.planner.candidates = 8
    torch.manual_seed(5)
    old = build_networks(plain_cfg.model)
    grown = build_networks(label_cfg.model)
    load_grown(grown, {n: net.state_dict() for n, net in old.items()}, "test")  # the label's weights start at zero
    norms = Normalizers.untrained_defaults(plain_cfg.model)
    before = RiskSensitivePlanner(plain_cfg, old, norms, "cpu").plan(state, goal, seed=0, map_input=pm)
    labelled = RiskSensitivePlanner(label_cfg, grown, norms, "cpu")
    same = labelled.plan(state, goal, seed=0, map_input=pm)
    np.testing.assert_allclose(same.candidates, before.candidates, atol=1e-5)  # a zero-weight label changes nothing
    np.testing.assert_allclose(same.risk_values, before.risk_values, atol=1e-5)
    with torch.no_grad():
        labelled.denoiser.context_mlp[0].weight[:, -1] = 3.0  # now the label moves the plans ...
    moved = labelled.plan(state, goal, seed=0, map_input=pm)
    np.testing.assert_allclose(moved.candidates[:4], before.candidates[:4], atol=1e-5)  # ... of label 1 only
    assert np.abs(moved.candidates[4:] - before.candidates[4:]).max() > 1e-3


def flagged_map_episodes():
    """(maps, episodes): two small maps, one with a risky band, and six episodes on them with their region flags."""
    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    maps = {"m0": (occ, level_grid(occ, [])), "m1": (occ, level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]))}
    episodes = synthetic_episodes(6)
    for i, e in enumerate(episodes):
        e["layout"] = f"m{i % 2}"
        e["in_risky_region"] = np.abs(e["observations"][1:, 1]) < 0.5
    return maps, episodes


def test_a_map_model_trains_with_the_label_and_refuses_episodes_without_region_flags(tmp_path):
    maps, episodes = flagged_map_episodes()
    summary = train(_label_config(steps=6, checkpoint_every=100), episodes, tmp_path, seed=0, device="cpu",
                    progress=False, maps=maps)
    assert summary["steps"] == 6
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    assert planner.config.model.route_label and planner.denoiser.context_mlp[0].in_features == \
        planner.config.model.context_dim + 1
    for e in episodes:
        del e["in_risky_region"]
    with pytest.raises(ValueError, match="in_risky_region flags"):
        train(_label_config(steps=2), episodes, tmp_path / "x", device="cpu", progress=False, maps=maps)
