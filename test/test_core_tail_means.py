"""The tail-means critic (model.critic_tail_means): its head, its loss, and its guidance gradient.

Its N outputs are the mean return of each 1/N of the mass, so CVaR_k/N is the mean of the lowest k; the loss
regresses those CVaRs on Rockafellar-Uryasev targets built from N - 1 boundary quantiles the head also predicts.
"""
import numpy as np
import pytest
import torch
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.config import CoreConfig
from rs_diffuser_ros.core.models.critic import QuantileCritic
from rs_diffuser_ros.core.models.critic_head import head_width, split_head
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.risk import risk_measure
from rs_diffuser_ros.core.sampling.critic_gradient import CriticTailGradient
from rs_diffuser_ros.core.training.quantile_loss import quantile_huber_loss
from rs_diffuser_ros.core.training.tail_mean_loss import boundary_levels, piece_targets, tail_mean_loss

N = 32


def spiky_returns(n: int, generator: torch.Generator) -> torch.Tensor:
    """A crossing's returns: 78 % no event (9), 20 % one event (-2), 2 % two events (-12), each with a little spread."""
    u = torch.rand(n, generator=generator)
    value = torch.where(u < 0.02, -12.0, torch.where(u < 0.22, -2.0, 9.0))
    return value + 0.3 * torch.randn(n, generator=generator)


def empirical_cvar(samples: torch.Tensor, alpha: float) -> float:
    worst = samples.sort().values[: round(alpha * len(samples))]
    return worst.mean().item()


def test_head_gives_n_ascending_values_and_n_minus_one_ascending_boundaries():
    assert head_width(N, tail_means=False) == N and head_width(N, tail_means=True) == 2 * N - 1
    out = torch.randn(5, 2 * N - 1) * 3
    values, boundaries = split_head(out, N)
    assert values.shape == (5, N) and boundaries.shape == (5, N - 1)
    assert (values.diff(dim=-1) > 0).all() and (boundaries.diff(dim=-1) > 0).all()
    values_only, none = split_head(out[:, :N], N)
    assert none is None
    torch.testing.assert_close(values_only, values)  # the boundaries do not change the values


def test_a_tail_means_model_builds_the_wider_head_and_its_forward_gives_n_values():
    cfg = CoreConfig().model
    cfg.critic_tail_means = True
    critic = build_networks(cfg)["critic"]
    window, context = torch.randn(3, cfg.horizon, cfg.state_dim), torch.randn(3, cfg.context_dim)
    values, boundaries = critic.with_boundaries(window, context, torch.zeros(3))
    assert critic.net[-1].out_features == 2 * N - 1
    assert boundaries.shape == (3, N - 1)
    torch.testing.assert_close(critic(window, context, torch.zeros(3)), values)


def test_rockafellar_uryasev_targets_average_to_each_pieces_mean_at_the_true_boundaries():
    samples = torch.arange(1.0, 65.0)  # 64 equally likely returns 1..64: piece k holds 2k + 1 and 2k + 2
    boundaries = torch.arange(2.0, 64.0, 2.0)[None]  # the k/32-quantiles: 2, 4, .., 62
    targets = piece_targets(boundaries, samples[None]).mean(-1)[0]  # [N]
    torch.testing.assert_close(targets, torch.arange(N) * 2 + 1.5)
    # Elsewhere the CVaRs the pieces add up to are lower (a lower bound): a boundary still learning errs cautious.
    off = piece_targets(boundaries + 1.5, samples[None]).mean(-1)[0]
    assert (off.cumsum(0)[:-1] < targets.cumsum(0)[:-1] - 1e-3).all()
    torch.testing.assert_close(off.mean(), samples.mean())  # and the pieces still average to the mean


def test_boundary_levels_are_the_k_over_n_between_the_pieces():
    np.testing.assert_allclose(boundary_levels(4).numpy(), [0.25, 0.5, 0.75])


def fit(loss_of, n_outputs: int, steps: int = 4000, seed: int = 0) -> torch.Tensor:
    """Free outputs (no network) fitted by Adam to batches of spiky returns; their ascending head values."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.zeros(1, n_outputs)
    raw[:, 1:] = -2.0
    raw.requires_grad_(True)
    opt = torch.optim.Adam([raw], lr=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.05, 1 - i / steps))
    for _ in range(steps):
        loss = loss_of(raw, spiky_returns(1024, g)[None])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return raw.detach()


def test_tail_means_recover_a_rare_large_loss_that_midpoint_quantiles_read_light():
    truth = spiky_returns(400_000, torch.Generator().manual_seed(99))
    tail_means = split_head(fit(lambda raw, z: tail_mean_loss(*split_head(raw, N), z), 2 * N - 1), N)[0]
    quantiles = split_head(fit(lambda raw, z: quantile_huber_loss(split_head(raw, N)[0], z), N), N)[0]
    for alpha in (0.03125, 0.1, 0.25):
        true = empirical_cvar(truth, alpha)
        assert abs(risk_measure(tail_means, alpha).item() - true) < 0.35, alpha
    # The midpoint quantiles' CVaR_1/32 is their lowest quantile, the median of the worst 1/32 (-12 and -2 mixed):
    # nearer -12 than the mean of that piece would put it, or above it; either way off by more than the tail means.
    true = empirical_cvar(truth, 0.03125)
    assert abs(risk_measure(quantiles, 0.03125).item() - true) > 1.0
    # The mean (alpha 1) is the plain mean for both.
    assert abs(risk_measure(tail_means, 1.0).item() - truth.mean().item()) < 0.1


def test_tail_mean_loss_names_a_head_of_the_wrong_width():
    with pytest.raises(ValueError, match="32 tail means need 31 boundary quantiles, got 30"):
        tail_mean_loss(torch.zeros(2, N), torch.zeros(2, N - 2), torch.zeros(2))


@pytest.mark.parametrize("mode,alpha", [("averse", 0.05), ("averse", 1.0), ("seeking", 0.2)])
def test_hand_written_gradient_reads_only_the_tail_means_of_the_wider_head(mode, alpha):
    torch.manual_seed(4)
    critic = QuantileCritic(horizon=8, state_dim=6, context_dim=4, n_quantiles=N, hidden=32, tail_means=True)
    with torch.no_grad():
        critic.net[-1].weight.mul_(20)
    levels = torch.linspace(0.0, 1.0, 4)
    x, context, alphas = torch.randn(5, 8, 6), torch.randn(5, 4), torch.full((5,), alpha)
    analytic = CriticTailGradient(critic, context, levels, alphas, mode)
    for step in (0, 3):
        xg = x.clone().requires_grad_(True)
        value = risk_measure(critic(xg, context, levels[step].expand(5)), alphas, mode)
        (expected,) = torch.autograd.grad(value.sum(), xg)
        torch.testing.assert_close(analytic(x, step), expected, atol=1e-5, rtol=1e-4)
