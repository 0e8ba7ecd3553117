"""RiskyNavEnv regression: seeded runs replay exactly as recorded before the step was sped up.

The fixture test/data/risky_nav_regression.npz was written by the env as it was before the
speed-up (commit 7c41812); speed-ups must not change what the simulation does. Each case
replays its recorded actions (so the scripted policies that produced some of them are not
part of what is tested) and compares observations, rewards, terminations, truncations and
every info field step by step, resetting without a seed wherever an episode ended.

The numbers are those of the PyBullet 3.2.7 wheel from PyPI (CPython 3.11, x86-64) this
project's venv installs; another PyBullet build may differ in the last bits and fail here
without anything being wrong with the env.

Re-record only for an intended change of the simulation:
    ./run.sh python test/test_sim_env_regression.py --record
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from risky_nav.env import RiskyNavEnv
from risky_nav.layout import LAYOUT_DIR, parse_layout
from risky_nav.policies import make_policy

FIXTURE = Path(__file__).parent / "data" / "risky_nav_regression.npz"
INFO_FLAGS = ("risk_event", "in_risky_region", "collision", "goal_reached")
INFO_NUMBERS = ("risk_penalty", "distance_to_goal")
HOLD = 12                # control steps a random action is held

# name -> (layout, risky p override or None, physics substeps, reset seed, reset options,
#          actor: "random" / a scripted policy name, steps, (step, goal) for set_goal or None)
CASES = {
    "default_random": ("default", None, 4, 0, None, "random", 900, None),
    "default_shortcut_p0.3": ("default", 0.3, 4, 10, None, "shortcut", 400, None),
    "default_noisy_detour": ("default", None, 4, 11, None, "noisy_detour", 300, None),
    "narrow_corridor_random_detour": ("narrow_corridor", None, 4, 20, None, "random_detour", 400, None),
    "two_risks_shortcut_p0.5": ("two_risks", 0.5, 4, 21, None, "shortcut", 300, None),
    "risk_near_goal_noisy_shortcut": ("risk_near_goal", 0.4, 4, 22, None, "noisy_shortcut", 300, None),
    "default_wall_slide": ("default", None, 4, 5, {"start": [0.6, 3.0, 2.4], "goal": [10.5, 4.0]},
                           "random", 300, None),
    "default_anywhere_8_substeps": ("default", 0.2, 8, 6, {"start_anywhere": True, "goal_anywhere": True},
                                    "random", 500, (120, [2.0, 7.0])),
}


def _layout(name: str, p: float | None):
    if p is None:
        return name
    raw = yaml.safe_load((LAYOUT_DIR / f"{name}.yaml").read_text())
    for region in raw["risky_regions"]:
        region["p"] = p
    return parse_layout(raw, source=f"{name} with p={p}")


def _step_record(obs, reward, terminated, truncated, info) -> dict:
    record = dict(obs=obs, reward=reward, terminated=terminated, truncated=truncated)
    record.update({k: info[k] for k in INFO_FLAGS + INFO_NUMBERS})
    return record


def _run(case: str, actions: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Run a case; with `actions` None the actor chooses them (recording), else they are replayed."""
    layout, p, substeps, seed, options, actor, steps, goal_change = CASES[case]
    env = RiskyNavEnv(_layout(layout, p), physics_substeps=substeps)
    rng = np.random.default_rng(seed + 1000)
    policy = None if actor == "random" else make_policy(actor, env.layout, rng)
    scale = 1.3 * env.action_space.high          # beyond the limits too, to exercise clipping
    obs, info = env.reset(seed=seed, options=options)
    resets = [_step_record(obs, 0.0, False, False, info)]
    reset_at, taken, records = [0], [], []
    if policy is not None:
        policy.reset(obs)
    for t in range(steps):
        if goal_change is not None and t == goal_change[0]:
            env.set_goal(goal_change[1])
            obs = np.concatenate([obs[:6], np.asarray(goal_change[1], np.float32)])
            if policy is not None:
                policy.reset(obs)
        if actions is not None:
            action = actions[t]
        elif policy is None:
            if t % HOLD == 0:                    # held for a while, so the robot gets somewhere
                random_action = rng.uniform(-scale, scale) + [0.5, 0.0]
            action = random_action
        else:
            action = np.asarray(policy(obs), dtype=np.float64)
        taken.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        records.append(_step_record(obs, reward, terminated, truncated, info))
        if terminated or truncated:
            obs, info = env.reset(options=options)
            resets.append(_step_record(obs, 0.0, False, False, info))
            reset_at.append(t + 1)
            if policy is not None:
                policy.reset(obs)
    env.close()
    out = {"actions": np.asarray(taken, dtype=np.float64), "reset_at": np.asarray(reset_at)}
    for prefix, rows in (("step", records), ("reset", resets)):
        for key in rows[0]:
            out[f"{prefix}_{key}"] = np.asarray([row[key] for row in rows])
    return out


def record() -> None:
    arrays = {}
    for case in CASES:
        for key, value in _run(case).items():
            arrays[f"{case}/{key}"] = value
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
    for case in CASES:
        print(f"{case}: {len(arrays[f'{case}/reset_at'])} episodes, "
              f"{int(arrays[f'{case}/step_collision'].sum())} collision steps, "
              f"{int(arrays[f'{case}/step_in_risky_region'].sum())} risky steps, "
              f"{int(arrays[f'{case}/step_risk_event'].sum())} risk events, "
              f"{int(arrays[f'{case}/step_terminated'].sum())} goals")


@pytest.fixture(scope="module")
def recorded():
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("case", sorted(CASES))
def test_replay_matches_the_recorded_trajectory(recorded, case):
    expected = {key.split("/", 1)[1]: value for key, value in recorded.items() if key.startswith(case + "/")}
    actual = _run(case, actions=expected["actions"])
    assert set(actual) == set(expected)
    np.testing.assert_array_equal(actual["reset_at"], expected["reset_at"])
    for key in sorted(actual):
        if actual[key].dtype == bool or key == "reset_at":
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=f"{case}: {key}")
        else:
            np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=1e-6, err_msg=f"{case}: {key}")


def test_fixture_exercises_collisions_risk_events_goals_and_truncations(recorded):
    """Guards the fixture itself: a replay that never collides or never meets risk would pin little."""
    total = {k: sum(int(recorded[f"{c}/step_{k}"].sum()) for c in CASES)
             for k in ("collision", "risk_event", "in_risky_region", "terminated", "truncated")}
    assert total["collision"] >= 20 and total["risk_event"] >= 20 and total["in_risky_region"] >= 100
    assert total["terminated"] >= 5 and total["truncated"] >= 1
    assert all(math.isfinite(float(recorded[f"{c}/step_reward"].sum())) for c in CASES)


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit(__doc__)
    record()
