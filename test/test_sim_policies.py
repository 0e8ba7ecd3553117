"""Scripted behaviour policies: the short cut crosses the risk, the detour avoids it, both arrive."""
import numpy as np
import pytest

from risky_nav import available_layouts
from risky_nav.env import RiskyNavEnv
from risky_nav.path_planner import GridPathPlanner
from risky_nav.policies import POLICY_NAMES, make_policy
from risky_nav.rollout import run_episode


@pytest.mark.parametrize("layout", available_layouts())
def test_shortcut_crosses_risk_and_detour_avoids_it(layout):
    env = RiskyNavEnv(layout)
    for seed in range(3):
        short = run_episode(env, make_policy("shortcut", env.layout), seed=seed)
        detour = run_episode(env, make_policy("detour", env.layout), seed=seed)
        assert short.success and detour.success, (layout, seed)
        assert short.in_risky_region.any()
        assert not detour.in_risky_region.any() and not detour.risk_events.any()
        assert len(detour) > len(short)
        assert not short.collisions.any() and not detour.collisions.any()
    env.close()


def test_detour_route_keeps_clear_of_risky_regions():
    env = RiskyNavEnv("default")
    planner = GridPathPlanner(env.layout, avoid_risk=True)
    route = planner.plan((1.5, 4.0), (10.5, 4.0))
    dense = np.concatenate([np.linspace(a, b, 50) for a, b in zip(route[:-1], route[1:])])
    assert not any(r.box.contains(x, y) for r in env.layout.risky_regions for x, y in dense)
    assert all(env.layout.is_free(x, y) for x, y in dense)
    env.close()


def test_noisy_and_random_variants_still_mostly_arrive():
    env = RiskyNavEnv("default")
    rng = np.random.default_rng(0)
    for name in POLICY_NAMES:
        policy = make_policy(name, env.layout, rng)
        results = [run_episode(env, policy, seed=s) for s in range(4)]
        assert sum(r.success for r in results) >= 3, name
        assert all(np.abs(r.actions[:, 0]).max() <= env.layout.robot.max_v + 1e-6 for r in results)
    env.close()


def test_noise_changes_the_actions():
    env = RiskyNavEnv("default")
    clean = run_episode(env, make_policy("shortcut", env.layout), seed=1)
    noisy = run_episode(env, make_policy("noisy_shortcut", env.layout, np.random.default_rng(1)), seed=1)
    assert not np.allclose(clean.actions[:20], noisy.actions[:20])
    env.close()


def test_unknown_policy_is_rejected():
    env = RiskyNavEnv("default")
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("teleport", env.layout)
    env.close()


def test_a_late_detour_follows_the_short_cut_towards_the_region_and_turns_for_the_detour_before_it():
    env = RiskyNavEnv("default")  # the short cut runs east through the passage (x 4-8); the detour goes round north
    passage = env.layout.risky_regions[0].box
    closest, driven = [], []
    for seed in range(8):
        shortcut = run_episode(env, make_policy("shortcut", env.layout), seed=seed)
        policy = make_policy("late_detour", env.layout, np.random.default_rng(seed))
        result = run_episode(env, policy, seed=seed)
        assert result.success and not result.collisions.any(), seed
        assert policy.entry is not None and passage.contains(*policy.entry, margin=1e-6)
        # Until it turned it drove exactly as the short cut did; then it kept out of the region.
        k = policy.steps_before_turn
        assert k is not None and policy.active is policy.detour
        np.testing.assert_array_equal(result.actions[:k], shortcut.actions[:k])
        assert not result.in_risky_region.any(), seed
        closest.append(min(passage.distance(x, y) for x, y in result.observations[:, :2]))
        driven.append(k)
    # The turns spread over the approach (draws of 0.5-6 m before the entry, on a ~2.5 m approach here): some at
    # the start, some right before the region.
    assert min(driven) == 0 and max(driven) >= 15
    latest, earliest = int(np.argmax(driven)), int(np.argmin(driven))
    assert closest[latest] < closest[earliest] - 0.2  # the later it turned, the nearer the region it came
    env.close()
