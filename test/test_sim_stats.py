"""Return statistics shared by calibration and evaluation: CVaR and its confidence intervals."""
import numpy as np
import pytest

from risky_nav.stats import cvar, cvar_ci, mean_ci, resampled_cvars


def test_cvar_is_the_mean_of_the_worst_fraction():
    returns = np.arange(1.0, 101.0)                 # 1..100
    assert cvar(returns, 0.1) == pytest.approx(5.5)  # mean of 1..10
    assert cvar(returns, 1.0) == pytest.approx(returns.mean())
    assert cvar([3.0, -7.0], 0.1) == -7.0            # at least one episode


def test_mean_interval_covers_the_true_mean():
    rng = np.random.default_rng(0)
    covered = sum(lo <= 2.0 <= hi for _, lo, hi in (mean_ci(rng.normal(2.0, 1.0, 200)) for _ in range(200)))
    assert 180 <= covered <= 198                     # ~95% nominal coverage


def test_cvar_interval_brackets_the_estimate_and_shrinks_with_data():
    rng = np.random.default_rng(1)
    small = cvar_ci(rng.normal(0, 1, 100), 0.1)
    large = cvar_ci(rng.normal(0, 1, 3000), 0.1)
    for value, lo, hi in (small, large):
        assert lo <= value <= hi
    assert large[2] - large[1] < small[2] - small[1]
    assert large[1] < -1.755 < large[2]              # CVaR_0.1 of N(0, 1) = -phi(1.2816)/0.1


def test_resampled_cvars_keep_the_one_cvar_rule():
    returns = np.array([3.0, -7.0, 1.0, 0.5, 2.0, -1.0, 4.0, 9.0, -2.5, 6.0, 0.0])  # 11: the worst ceil(1.1) = 2
    got = resampled_cvars(returns, 50, np.random.default_rng(4))
    draws = np.random.default_rng(4).integers(0, returns.size, (50, returns.size))
    np.testing.assert_allclose(got, [cvar(returns[d]) for d in draws])
    with pytest.raises(ValueError, match="no episodes"):
        resampled_cvars([], 3, np.random.default_rng(0))
