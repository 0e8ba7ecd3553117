"""The per-step map critic (models/per_step_critic.py) and training a new critic on a trained model's frozen
networks (train --train-only critic)."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)
from test_core_map_input import _map_episodes, grid_with, level_grid, map_config

from rs_diffuser_ros.core.config import ConfigError
from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.models.per_step_critic import PerStepMapCritic
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import train


def step_config(embedding: bool = True, **training):
    cfg = map_config(**training)
    cfg.model.critic_kind, cfg.model.critic_reads_map_embedding = "per_step", embedding
    return cfg.validate()


def test_the_per_step_critic_gives_sorted_quantiles_and_reads_one_risky_state_anywhere_in_the_window():
    torch.manual_seed(0)
    critic = PerStepMapCritic(horizon=8, state_dim=6, context_dim=10, along_channels=5, n_quantiles=16)
    window, context, noise, along = torch.randn(4, 8, 6), torch.randn(4, 10), torch.rand(4), torch.zeros(4, 8, 5)
    q = critic(window, context, noise, along)
    assert q.shape == (4, 16) and (q.diff(dim=-1) >= 0).all()
    for step in (0, 3, 7):  # the same shared weights see a channel at any step
        bumped = along.clone()
        bumped[:, step, 1] = 1.0
        assert not torch.allclose(critic(window, context, noise, bumped), q, atol=1e-4)
    with pytest.raises(ValueError, match="along"):
        critic(window, context, noise)


def test_a_critic_that_does_not_read_the_map_embedding_ignores_it_but_not_the_goal():
    torch.manual_seed(0)
    critic = build_networks(step_config(embedding=False).model)["critic"]
    window, noise, along = torch.randn(3, 8, 6), torch.rand(3), torch.randn(3, 8, 5)
    context = torch.randn(3, 10)  # relative goal (2), map embedding (8)
    other_map = torch.cat([context[:, :2], torch.randn(3, 8)], -1)
    other_goal = torch.cat([torch.randn(3, 2), context[:, 2:]], -1)
    q = critic(window, context, noise, along)
    assert torch.equal(critic(window, other_map, noise, along), q)
    assert not torch.allclose(critic(window, other_goal, noise, along), q, atol=1e-4)


def test_critic_settings_are_validated():
    cfg = map_config()
    cfg.model.critic_kind = "conv"
    with pytest.raises(ConfigError, match="critic_kind"):
        cfg.validate()
    cfg = map_config()
    cfg.model.critic_reads_map_embedding = False  # the flat critic always reads its whole context
    with pytest.raises(ConfigError, match="critic_reads_map_embedding"):
        cfg.validate()
    cfg = map_config()
    cfg.model.map_patch_cells, cfg.model.critic_kind = 0, "per_step"
    with pytest.raises(ConfigError, match="map-conditioned"):
        cfg.validate()


def test_train_only_critic_keeps_the_other_networks_and_the_new_critic_plans(tmp_path):
    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    maps = {"m0": (occ, level_grid(occ, [])), "m1": (occ, level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]))}
    train(map_config(steps=5, checkpoint_every=100), _map_episodes(), tmp_path / "base", seed=0, device="cpu",
          progress=False, maps=maps)
    base = tmp_path / "base" / "model.safetensors"
    summary = train(step_config(steps=30, checkpoint_every=100, ema_start=1000), _map_episodes(), tmp_path / "new",
                    seed=1, device="cpu", progress=False, maps=maps, init_from=base, train_only="critic")
    assert summary["final_losses"]["diffusion"] == 0.0 and summary["final_losses"]["critic"] > 0.0
    old, new = load_file(str(base)), load_file(str(tmp_path / "new" / "model.safetensors"))
    for name in old:
        if name.split(".")[0] in ("denoiser", "inverse_dynamics", "map_encoder"):
            assert torch.equal(old[name], new[name]), name
    assert any(k.startswith("critic.step_net") for k in new) and not any(k.startswith("critic.net.") for k in new)
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "new" / "model.safetensors", device="cpu")
    assert planner.config.model.critic_kind == "per_step"
    result = planner.plan([-2, 0, 0, 1, 0, 0], [2, 0], seed=0, map_input=PlanningMap.from_grids(*maps["m1"]))
    assert np.isfinite(result.action).all()
    with pytest.raises(ValueError, match="init-from"):
        train(step_config(steps=2), _map_episodes(), tmp_path / "x", device="cpu", progress=False, maps=maps,
              train_only="critic")


def test_critic_continued_trains_the_loaded_critic_on_with_its_return_scale(tmp_path):
    from rs_diffuser_ros.core.checkpoint import read_checkpoint

    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    maps = {"m0": (occ, level_grid(occ, [])), "m1": (occ, level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]))}
    train(step_config(steps=3, checkpoint_every=100), _map_episodes(), tmp_path / "base", seed=0, device="cpu",
          progress=False, maps=maps)
    base = tmp_path / "base" / "model.safetensors"
    shifted = _map_episodes()
    for e in shifted:
        e["rewards"] = np.asarray(e["rewards"]) * 3.0  # a fresh critic would refit its scale to this
    train(step_config(steps=4, checkpoint_every=100, ema_start=1000), shifted, tmp_path / "on", seed=1, device="cpu",
          progress=False, maps=maps, init_from=base, train_only="critic_continued")
    _, old_norm, _, _ = read_checkpoint(base)
    _, new_norm, _, _ = read_checkpoint(tmp_path / "on" / "model.safetensors")
    assert new_norm.returns.std == old_norm.returns.std and new_norm.returns.mean == old_norm.returns.mean
    old, new = load_file(str(base)), load_file(str(tmp_path / "on" / "model.safetensors"))
    critic = [k for k in old if k.startswith("critic.")]
    assert all(torch.equal(old[k], new[k]) for k in old if not k.startswith("critic."))
    moved = [k for k in critic if not torch.equal(old[k], new[k])]
    assert moved  # the critic trained ...
    # ... on from the loaded one, not from a fresh one: its weights moved by a few optimiser steps only.
    assert max(float((old[k] - new[k]).abs().max()) for k in critic) < 0.05
    with pytest.raises(ValueError, match="train_only must be one of"):
        train(step_config(steps=2), _map_episodes(), tmp_path / "x", device="cpu", progress=False, maps=maps,
              init_from=base, train_only="denoiser")


def test_a_few_stuck_episodes_do_not_set_the_return_scale():
    from rs_diffuser_ros.core.normalizer import StandardNormalizer

    rng = np.random.default_rng(0)
    returns = torch.as_tensor(np.concatenate([rng.normal(8.0, 2.5, 9950), np.full(50, -500.0)]))  # 0.5 % stuck
    plain, trimmed = StandardNormalizer.fit(returns), StandardNormalizer.fit(returns, trim=0.01)
    assert plain.std > 30  # the stuck windows alone make it wide
    assert abs(trimmed.std - 2.5) < 0.3 and abs(trimmed.mean - 8.0) < 0.2
    assert StandardNormalizer.fit(returns[:9950], trim=0.0).std == pytest.approx(2.5, abs=0.1)
    with pytest.raises(ValueError, match="trim"):
        StandardNormalizer.fit(returns, trim=0.5)


def test_train_only_critic_fits_its_own_return_scale_and_keeps_the_other_normalisers(tmp_path):
    from rs_diffuser_ros.core.checkpoint import read_checkpoint

    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    maps = {"m0": (occ, level_grid(occ, [])), "m1": (occ, level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]))}
    train(map_config(steps=2, checkpoint_every=100), _map_episodes(), tmp_path / "base", seed=0, device="cpu",
          progress=False, maps=maps)
    shifted = _map_episodes()
    for e in shifted:
        e["rewards"] = np.asarray(e["rewards"]) * 3.0  # every return-to-go x 3
    train(step_config(steps=2, checkpoint_every=100), shifted, tmp_path / "new", seed=1, device="cpu", progress=False,
          maps=maps, init_from=tmp_path / "base" / "model.safetensors", train_only="critic")
    _, base, _, _ = read_checkpoint(tmp_path / "base" / "model.safetensors")
    _, new, _, _ = read_checkpoint(tmp_path / "new" / "model.safetensors")
    assert new.returns.std == pytest.approx(3.0 * base.returns.std, rel=0.05)
    assert torch.equal(new.plan.low, base.plan.low) and torch.equal(new.action.high, base.action.high)
