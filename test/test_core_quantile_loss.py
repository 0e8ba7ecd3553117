"""Quantile-Huber regression recovers the quantiles of a known distribution."""
import numpy as np
import torch

from rs_diffuser_ros.core.risk import quantile_levels
from rs_diffuser_ros.core.training.quantile_loss import quantile_huber_loss
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)


def test_quantile_loss_decreases_and_recovers_exponential_quantiles():
    torch.manual_seed(0)
    n = 16
    pred = torch.zeros(1, n, requires_grad=True)
    opt = torch.optim.Adam([pred], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.02, 1 - i / 600))
    dist = torch.distributions.Exponential(torch.tensor(0.5))  # mean 2, skewed
    losses = []
    for _ in range(600):
        target = dist.sample((1, 256))
        loss = quantile_huber_loss(pred, target, kappa=0.1)  # small kappa: little Huber bias in the tail
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    true_q = -np.log(1 - quantile_levels(n).numpy()) / 0.5
    # The loss has an irreducible part (the spread of the distribution): compare with its value at the truth.
    held_out = dist.sample((1, 200_000))
    at_truth = quantile_huber_loss(torch.tensor(true_q, dtype=torch.float32)[None], held_out, kappa=0.1).item()
    learned = quantile_huber_loss(pred.detach(), held_out, kappa=0.1).item()
    assert np.mean(losses[:10]) > 1.5 * at_truth  # it started far from the optimum ...
    assert learned < 1.02 * at_truth  # ... and ended at it
    np.testing.assert_allclose(pred.detach().numpy()[0], true_q, rtol=0.08, atol=0.05)


def test_loss_is_zero_gradient_at_true_quantiles_in_the_pinball_limit():
    # With a tiny kappa the loss is the pinball loss, minimised exactly at the sample quantiles.
    samples = torch.arange(1, 101, dtype=torch.float64)[None]  # 1..100
    tau = quantile_levels(4).double()
    at_quantiles = torch.tensor(np.quantile(samples.numpy()[0], tau.numpy()))[None]
    off = at_quantiles + torch.tensor([[5.0, -5.0, 5.0, -5.0]], dtype=torch.float64)
    assert quantile_huber_loss(at_quantiles, samples, kappa=1e-3) < quantile_huber_loss(off, samples, kappa=1e-3)
