"""Metrics and confidence intervals of the evaluation, on data whose answers are known."""
import numpy as np
import pytest

from rs_diffuser_ros.eval.metrics import (EpisodeOutcome, Estimate, bootstrap_mean, bootstrap_ratio, cvar_of_returns,
                                          summarize, wilson_interval)


def outcome(ret=0.0, length=10, success=True, collision_steps=0, risky_steps=0, violation_steps=None, events=0, i=0):
    violation_steps = max(collision_steps, risky_steps) if violation_steps is None else violation_steps
    return EpisodeOutcome("s", i, i, ret, length, success, collision_steps, risky_steps, violation_steps, events)


def test_wilson_interval_known_values():
    # Reference values (Wilson 1927; e.g. statsmodels proportion_confint(method="wilson")).
    e = wilson_interval(5, 10)
    assert e.value == 0.5
    assert e.low == pytest.approx(0.2366, abs=1e-4) and e.high == pytest.approx(0.7634, abs=1e-4)
    e = wilson_interval(0, 10)
    assert e.low == 0.0 and e.high == pytest.approx(0.2775, abs=1e-4)
    e = wilson_interval(10, 10)
    assert e.high == 1.0 and e.low == pytest.approx(0.7225, abs=1e-4)
    e = wilson_interval(81, 263)
    assert (e.low, e.high) == pytest.approx((0.2553, 0.3662), abs=1e-4)


def test_wilson_interval_rejects_bad_counts():
    with pytest.raises(ValueError, match="trial"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_cvar_of_a_known_list_is_the_mean_of_its_worst_tenth():
    returns = np.arange(1, 21, dtype=float)          # worst 10% of 20 = {1, 2}
    e = cvar_of_returns(returns)
    assert e.value == pytest.approx(1.5)
    assert e.low <= e.value <= e.high
    rng = np.random.default_rng(0)
    returns = rng.permutation(np.r_[np.full(90, 10.0), np.full(10, -20.0)])
    assert cvar_of_returns(returns).value == pytest.approx(-20.0)


def test_bootstrap_mean_interval_covers_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = bootstrap_mean(rng.normal(3.0, 1.0, 50))
    large = bootstrap_mean(rng.normal(3.0, 1.0, 2000))
    assert small.low < small.value < small.high
    assert large.low < 3.0 < large.high
    assert (large.high - large.low) < (small.high - small.low) / 4
    constant = bootstrap_mean([2.0] * 7)
    assert (constant.value, constant.low, constant.high) == (2.0, 2.0, 2.0)


def test_bootstrap_ratio_pools_steps_and_resamples_episodes():
    e = bootstrap_ratio([1, 0, 3], [10, 10, 20])
    assert e.value == pytest.approx(4 / 40)
    assert e.low <= e.value <= e.high
    with pytest.raises(ValueError):
        bootstrap_ratio([1, 2], [1])


def test_summarize_counts_violations_catastrophes_and_steps():
    outcomes = [
        outcome(ret=5.0, length=10, risky_steps=4, events=1, i=0),         # entered risky region, struck once
        outcome(ret=6.0, length=10, collision_steps=2, i=1),               # collided
        outcome(ret=7.0, length=20, i=2),                                  # clean
        outcome(ret=-1.0, length=40, success=False, i=3),                  # timed out, clean
    ]
    s = summarize(outcomes)
    assert s["violation_rate"].value == pytest.approx(0.5)
    assert s["violation_step_rate"].value == pytest.approx(6 / 80)
    assert s["catastrophic_events"].value == pytest.approx(0.25)
    assert s["catastrophe_rate"].value == pytest.approx(0.25)
    assert s["collision_rate"].value == pytest.approx(0.25)
    assert s["success_rate"].value == pytest.approx(0.75)
    assert s["episode_length"].value == pytest.approx(20.0)
    assert s["mean_return"].value == pytest.approx(4.25)
    assert s["cvar_return"].value == pytest.approx(-1.0)
    assert all(isinstance(v, Estimate) and v.low <= v.value + 1e-12 and v.value <= v.high + 1e-12 for v in s.values())


def test_episode_outcome_json_has_derived_flags_but_no_path():
    d = outcome(risky_steps=1).to_dict()
    assert d["violation"] and d["entered_risky_region"] and not d["collided"]
    assert "path" not in d


def test_summary_of_a_real_run_matches_numpy_on_the_raw_steps(tmp_path):
    """The evaluation's episodes (run_lockstep) and metrics (summarize) against the same episodes
    stepped here by hand, every number recomputed from the raw rewards and infos with plain numpy.

    Default layout, time limit 13.3 s: the short cut always arrives through the risky passage
    (a penalty strikes in some episodes), the detour avoids it and arrives in only some episodes.
    """
    import gymnasium
    import risky_nav
    import yaml
    from risky_nav.layout import LAYOUT_DIR
    from risky_nav.policies import make_policy
    from rs_diffuser_ros.eval.lockstep import run_lockstep
    from rs_diffuser_ros.eval.policies import ScriptedBatchPolicy

    raw = yaml.safe_load((LAYOUT_DIR / "default.yaml").read_text())
    raw.update(name="tight", time_limit=13.3)
    layout_path = tmp_path / "tight.yaml"
    layout_path.write_text(yaml.safe_dump(raw))
    seeds = list(range(10))
    env = gymnasium.make(risky_nav.ENV_ID, layout=str(layout_path), disable_env_checker=True)
    try:
        layout = env.unwrapped.layout
        outcomes = []
        for name in ("shortcut", "detour"):
            outcomes += run_lockstep([env], ScriptedBatchPolicy(name, layout, 1), name, list(enumerate(seeds)))
        by_hand = []   # per episode: rewards [T], in-region flags [T], collision flags [T], events [T], last distance
        for name in ("shortcut", "detour"):
            for seed in seeds:
                obs, _ = env.reset(seed=seed)
                policy = make_policy(name, layout)    # the waypoint policies use no random numbers
                policy.reset(obs)
                steps, done = [], False
                while not done:
                    obs, reward, terminated, truncated, info = env.step(policy(obs))
                    steps.append((reward, info["in_risky_region"], info["collision"], info["risk_event"],
                                  info["distance_to_goal"]))
                    done = terminated or truncated
                by_hand.append(np.array(steps, dtype=np.float64))
    finally:
        env.close()

    returns = np.array([s[:, 0].sum() for s in by_hand])
    lengths = np.array([len(s) for s in by_hand])
    risky = np.array([s[:, 1].sum() for s in by_hand])
    violating_steps = np.array([np.logical_or(s[:, 1], s[:, 2]).sum() for s in by_hand])
    collided = np.array([s[:, 2].any() for s in by_hand])
    events = np.array([s[:, 3].sum() for s in by_hand])
    success = np.array([s[-1, 4] < layout.goal_tolerance for s in by_hand])
    violation = (risky > 0) | collided
    # The run must mix outcomes, or rates of 0 and 1 would agree whatever the code does.
    assert 0 < violation.mean() < 1 and 0 < success.mean() < 1 and 0 < (events > 0).mean() < 1, \
        (violation, success, events)

    assert [o.setting for o in outcomes] == ["shortcut"] * 10 + ["detour"] * 10
    np.testing.assert_allclose([o.episode_return for o in outcomes], returns, rtol=0, atol=1e-9)
    assert [o.length for o in outcomes] == lengths.tolist()
    assert [o.success for o in outcomes] == success.tolist()
    assert [o.risky_steps for o in outcomes] == risky.tolist()
    assert [o.violation for o in outcomes] == violation.tolist()
    assert [o.risk_events for o in outcomes] == events.tolist()

    s = summarize(outcomes)
    worst = np.sort(returns)[:int(np.ceil(0.1 * len(returns)))]          # CVaR_0.1: mean of the worst 10%
    expected = {
        "mean_return": returns.mean(),
        "cvar_return": worst.mean(),
        "violation_rate": violation.mean(),
        "violation_step_rate": violating_steps.sum() / lengths.sum(),
        "catastrophic_events": events.mean(),
        "catastrophe_rate": (events > 0).mean(),
        "collision_rate": collided.mean(),
        "success_rate": success.mean(),
        "episode_length": lengths.mean(),
    }
    assert set(s) == set(expected)
    for metric, value in expected.items():
        assert s[metric].value == pytest.approx(value, abs=1e-9), metric
        assert s[metric].low <= s[metric].value + 1e-9 and s[metric].value <= s[metric].high + 1e-9, metric
