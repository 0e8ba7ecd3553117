"""training.critic_on_arrived: the critic and its return scale learn from the episodes that reached their goal only.

An episode that did not is the scripted driver pinned on a wall until the time limit (returns to -760 in generated-map
data), a failure the shipped controller's collision check rules out; such windows inflated the return scale and pulled
a tail-means critic's lowest pieces towards walls (docs/method_choices.md, "Tail means")."""
import numpy as np
import pytest
import torch
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.checkpoint import read_checkpoint
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.normalizer import StandardNormalizer
from rs_diffuser_ros.core.schedule import DiffusionSchedule
from rs_diffuser_ros.core.training.losses import TrainingObjective
from rs_diffuser_ros.core.training.quantile_loss import quantile_huber_loss
from rs_diffuser_ros.core.training.tail_mean_loss import tail_mean_loss
from rs_diffuser_ros.core.training.train import RETURN_TRIM, fit_normalizers, train
from rs_diffuser_ros.core.training.windows import WindowDataset


def stuck_episode(steps: int = 60) -> dict:
    ep = synthetic_episodes(1, seed=9, max_steps=steps)[0]
    ep["rewards"] = np.full(len(ep["rewards"]), -40.0)
    ep["terminations"] = np.zeros(len(ep["rewards"]), bool)
    ep["truncations"] = np.arange(len(ep["rewards"])) == len(ep["rewards"]) - 1
    return ep


def episodes_with_one_stuck() -> list[dict]:
    episodes = synthetic_episodes(6, seed=1, max_steps=120)
    assert all(ep["terminations"][-1] for ep in episodes)  # the synthetic driver arrives
    return episodes + [stuck_episode()]


@pytest.mark.parametrize("tail_means", [False, True])
def test_the_critic_loss_reads_only_the_windows_of_episodes_that_arrived(tail_means):
    cfg = tiny_config(critic_clean_fraction=1.0)  # clean windows: the critic's inputs do not depend on the draw
    cfg.model.critic_tail_means = tail_means
    data = WindowDataset.from_episodes(episodes_with_one_stuck(), cfg.model.horizon, 1.0)
    norm = fit_normalizers(data)
    torch.manual_seed(0)
    networks = build_networks(cfg.model)
    schedule = DiffusionSchedule(cfg.model.diffusion_steps, cfg.planner.ddim_steps)
    objective = lambda on_arrived: TrainingObjective(networks, schedule, norm, cfg.training, critic_only=True,  # noqa: E731
                                                     critic_on_arrived=on_arrived)
    rows = torch.arange(len(data))
    batch = data.batch(rows)
    arrived_rows = rows[data.arrived > 0]
    assert 0 < len(arrived_rows) < len(rows)
    with torch.no_grad():
        filtered = objective(True)(batch)["critic"]
        arrived_only = objective(False)(data.batch(arrived_rows))["critic"]
        everything = objective(False)(batch)["critic"]
    torch.testing.assert_close(filtered, arrived_only)
    assert abs(everything.item() - filtered.item()) > 0.1 * filtered.item()  # the stuck windows would have counted


@pytest.mark.parametrize("loss", ["quantile", "tail_means"])
def test_a_zero_weight_leaves_a_row_out_of_the_critic_loss_as_if_it_were_not_in_the_batch(loss):
    # Why weights: indexing the arrived rows out made the batch's shape depend on the data (a host sync a step).
    torch.manual_seed(0)
    n, rows = 8, 12
    values = torch.randn(rows, n).sort(1).values
    boundaries = torch.randn(rows, n - 1).sort(1).values
    target = torch.randn(rows, 4) * 3
    keep = torch.rand(rows) < 0.5
    keep[:2] = torch.tensor([True, False])
    def of(idx, weights=None):  # noqa: E306
        if loss == "quantile":
            return quantile_huber_loss(values[idx], target[idx], 0.5, weights=weights)
        return tail_mean_loss(values[idx], boundaries[idx], target[idx], 0.5, weights=weights)
    everything = torch.arange(rows)
    torch.testing.assert_close(of(everything, keep.float()), of(everything[keep]))
    assert not torch.isclose(of(everything), of(everything[keep]))  # the left-out rows would have counted


@pytest.mark.parametrize("tail_means", [False, True])
def test_a_batch_of_stuck_windows_alone_gives_the_critic_a_zero_loss_and_zero_gradients(tail_means):
    cfg = tiny_config(critic_clean_fraction=1.0)
    cfg.model.critic_tail_means = tail_means
    data = WindowDataset.from_episodes(episodes_with_one_stuck(), cfg.model.horizon, 1.0)
    stuck_rows = torch.arange(len(data))[data.arrived == 0]
    assert len(stuck_rows) > 0
    torch.manual_seed(0)
    networks = build_networks(cfg.model)
    schedule = DiffusionSchedule(cfg.model.diffusion_steps, cfg.planner.ddim_steps)
    objective = TrainingObjective(networks, schedule, fit_normalizers(data), cfg.training, critic_only=True,
                                  critic_on_arrived=True)
    critic = objective(data.batch(stuck_rows))["critic"]
    critic.backward()
    assert critic.item() == 0.0
    grads = [p.grad for p in networks["critic"].parameters() if p.grad is not None]
    assert grads and all(torch.equal(g, torch.zeros_like(g)) for g in grads)


def test_training_fits_the_return_scale_on_the_arrived_windows_and_names_data_without_terminations(tmp_path):
    episodes = episodes_with_one_stuck()
    cfg = tiny_config(steps=4, critic_on_arrived=True)
    train(cfg, episodes, tmp_path / "run", progress=False)
    _, norm, _, _ = read_checkpoint(tmp_path / "run" / "model.safetensors")
    scale = lambda eps: StandardNormalizer.fit(  # noqa: E731
        WindowDataset.from_episodes(eps, cfg.model.horizon, 1.0).window_returns(), trim=RETURN_TRIM)
    assert norm.returns.mean == pytest.approx(scale(episodes[:-1]).mean, abs=1e-4)  # the stuck episode left out
    assert norm.returns.std == pytest.approx(scale(episodes[:-1]).std, abs=1e-4)
    assert abs(scale(episodes).mean - norm.returns.mean) > 1.0  # it would have moved the scale
    without = [{k: v for k, v in ep.items() if k != "terminations"} for ep in episodes]
    with pytest.raises(ValueError, match="critic_on_arrived .* need their 'terminations'"):
        train(cfg, without, tmp_path / "bad", progress=False)
