"""Risk measures from quantiles against empirical ones from samples."""
import math

import numpy as np
import pytest
import torch

from rs_diffuser_ros.core.risk import quantile_levels, risk_measure
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)


def _mixture_samples(n=400_000, seed=0):
    # 90 % ordinary returns, 10 % catastrophes: the tail CVaR sees, the mean barely does.
    rng = np.random.default_rng(seed)
    bad = rng.random(n) < 0.1
    return np.where(bad, rng.normal(-20, 3, n), rng.normal(5, 1, n))


def _empirical_cvar(samples, alpha):
    s = np.sort(samples)
    return s[: max(1, int(round(alpha * len(s))))].mean()


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.137, 0.25, 0.5, 0.9, 1.0])
def test_cvar_from_quantiles_matches_empirical_cvar(alpha):
    samples = _mixture_samples()
    n_quantiles = 200
    q = torch.tensor(np.quantile(samples, quantile_levels(n_quantiles).numpy()), dtype=torch.float64)
    got = float(risk_measure(q, alpha, "averse"))
    want = _empirical_cvar(samples, alpha)
    assert got == pytest.approx(want, abs=0.15), (alpha, got, want)


@pytest.mark.parametrize("alpha", [0.05, 0.3, 1.0])
def test_upper_tail_matches_empirical_upper_cvar(alpha):
    samples = _mixture_samples(seed=1)
    q = torch.tensor(np.quantile(samples, quantile_levels(200).numpy()), dtype=torch.float64)
    got = float(risk_measure(q, alpha, "seeking"))
    want = -_empirical_cvar(-samples, alpha)
    assert got == pytest.approx(want, abs=0.15)


def test_alpha_one_is_the_mean_in_both_modes():
    q = torch.randn(5, 16).sort(-1).values
    for mode in ("averse", "seeking"):
        torch.testing.assert_close(risk_measure(q, 1.0, mode), q.mean(-1))


def test_fractional_alpha_weights_the_boundary_quantile():
    q = torch.tensor([-10.0, 0.0, 10.0, 20.0])  # N = 4, each quantile is 1/4 of the mass
    # alpha = 0.375: quantile 0 fully (0.25) and half of quantile 1 (0.125): (-10*0.25 + 0*0.125)/0.375
    assert float(risk_measure(q, 0.375)) == pytest.approx(-10 * 0.25 / 0.375)
    # continuous and monotone in alpha
    alphas = torch.linspace(0.01, 1, 200)
    values = risk_measure(q.expand(200, 4), alphas)
    assert torch.all(values[1:] >= values[:-1] - 1e-6)


def test_per_row_alpha_and_unsorted_input():
    q = torch.tensor([[3.0, 1.0, 2.0, 0.0], [3.0, 1.0, 2.0, 0.0]])
    out = risk_measure(q, torch.tensor([0.25, 1.0]))
    torch.testing.assert_close(out, torch.tensor([0.0, 1.5]))


def test_risk_measure_is_differentiable():
    q = torch.randn(3, 8, requires_grad=True)
    risk_measure(q, 0.3).sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()


@pytest.mark.parametrize("alpha", [0.0, -0.1, 1.5, math.nan, math.inf])
def test_bad_alpha_is_rejected(alpha):
    from rs_diffuser_ros.core.risk import check_alpha

    with pytest.raises(ValueError, match="alpha"):
        check_alpha(alpha)


def test_bad_risk_mode_is_rejected():
    with pytest.raises(ValueError, match="risk_mode"):
        risk_measure(torch.zeros(4), 0.5, "neutral")
