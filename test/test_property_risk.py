"""Property tests of the risk measures on arbitrary quantile sets (risk.risk_measure).

CVaR_alpha (averse) is the mean of the worst alpha of the mass, the seeking measure the mean
of the best alpha: so for any quantiles and any alpha in (0, 1] they lie between the extreme
and the mean, move monotonically with alpha, equal the mean at alpha = 1, do not depend on
the order the quantiles come in, and shift and scale with the returns (translation
equivariance, positive homogeneity: CVaR is a coherent risk measure).
"""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rs_diffuser_ros.core.risk import risk_measure

SETTINGS = settings(max_examples=200, deadline=None)
quantile_sets = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=64).map(
    lambda values: torch.tensor(values, dtype=torch.float64))
alphas = st.floats(min_value=1e-3, max_value=1.0, allow_nan=False)
modes = st.sampled_from(["averse", "seeking"])


def rho(q, alpha, mode="averse") -> float:
    return float(risk_measure(q, alpha, mode))


def tol(q) -> float:
    # The tail weights are computed in float32: allow their rounding, scaled by the returns' size.
    return 1e-5 * (1.0 + float(q.abs().max()))


@SETTINGS
@given(quantile_sets, alphas, alphas)
def test_cvar_is_non_decreasing_in_alpha_and_the_upper_tail_non_increasing(q, a, b):
    low, high = min(a, b), max(a, b)
    assert rho(q, low) <= rho(q, high) + tol(q)
    assert rho(q, low, "seeking") >= rho(q, high, "seeking") - tol(q)


@SETTINGS
@given(quantile_sets, alphas)
def test_lower_tail_lies_between_min_and_mean_upper_between_mean_and_max(q, alpha):
    mean = float(q.mean())
    assert float(q.min()) - tol(q) <= rho(q, alpha) <= mean + tol(q)
    assert mean - tol(q) <= rho(q, alpha, "seeking") <= float(q.max()) + tol(q)


@SETTINGS
@given(quantile_sets, modes)
def test_alpha_one_is_the_mean_in_both_modes(q, mode):
    assert abs(rho(q, 1.0, mode) - float(q.mean())) <= tol(q)


@SETTINGS
@given(quantile_sets, alphas)
def test_small_alpha_is_the_worst_and_best_quantile(q, alpha):
    tiny = 0.5 / len(q)  # less than one quantile's mass: only the extreme one counts
    assert abs(rho(q, tiny) - float(q.min())) <= tol(q)
    assert abs(rho(q, tiny, "seeking") - float(q.max())) <= tol(q)


@SETTINGS
@given(quantile_sets, alphas, modes, st.randoms(use_true_random=False))
def test_the_order_of_the_quantiles_does_not_matter(q, alpha, mode, rng):
    order = list(range(len(q)))
    rng.shuffle(order)
    assert abs(rho(q[order], alpha, mode) - rho(q, alpha, mode)) <= tol(q)


@SETTINGS
@given(quantile_sets, alphas, modes, st.floats(-1e3, 1e3), st.floats(1e-3, 1e3))
def test_shift_and_positive_scale_carry_through(q, alpha, mode, shift, scale):
    moved = q * scale + shift
    assert abs(rho(moved, alpha, mode) - (rho(q, alpha, mode) * scale + shift)) <= tol(moved) * 10


@SETTINGS
@given(quantile_sets, modes)
def test_seeking_is_averse_on_the_negated_returns(q, mode):
    alpha = 0.3
    assert abs(rho(q, alpha, "seeking") + rho(-q, alpha, "averse")) <= tol(q)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=16, max_size=16).map(
    lambda values: torch.tensor(values, dtype=torch.float64)), min_size=1, max_size=6),
       st.lists(alphas, min_size=6, max_size=6), modes)
def test_a_batch_with_per_row_alpha_equals_one_row_at_a_time(rows, row_alphas, mode):
    batch = torch.stack(rows)
    alpha = torch.tensor(row_alphas[:len(rows)], dtype=torch.float64)
    together = risk_measure(batch, alpha, mode).numpy()
    alone = np.array([rho(row, float(a), mode) for row, a in zip(rows, alpha)])
    np.testing.assert_allclose(together, alone, atol=tol(batch))
