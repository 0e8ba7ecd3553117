"""Risky PointMass scripted policies and dataset: what each behaviour does, Minari format, reproducibility."""
import numpy as np
import pytest

from risky_nav.dataset import DatasetError, dataset_metadata, load_episodes
from risky_nav.rollout import run_episode
from risky_pointmass.collect import collect
from risky_pointmass.env import RiskyPointMassEnv, in_disc
from risky_pointmass.policies import make_policy

MIX = {"straight": 0.4, "detour": 0.4, "random": 0.2}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets") / "riskypointmass" / "small-v0"
    collect(episodes=30, out=out, mix=MIX, seed=2, progress=False)
    return out


def test_straight_crosses_the_disc_and_detour_goes_round_it_from_the_eval_start():
    env = RiskyPointMassEnv()
    for seed in range(10):
        straight = run_episode(env, make_policy("straight", np.random.default_rng(seed)), seed, {"eval": True})
        detour = run_episode(env, make_policy("detour", np.random.default_rng(seed)), seed, {"eval": True})
        assert straight.success and detour.success
        assert straight.in_risky_region.any() and not in_disc(detour.observations[:, :2]).any()
        assert len(detour) > len(straight)


def test_actions_stay_within_the_env_limit():
    env = RiskyPointMassEnv()
    for name in ("noisy_straight", "noisy_detour", "random"):
        record = run_episode(env, make_policy(name, np.random.default_rng(0)), 0)
        assert np.abs(record.actions).max() <= 0.1 + 1e-7


def test_dataset_has_point_mass_shapes_and_minari_reads_it(dataset_dir):
    import minari

    episodes = load_episodes(dataset_dir)
    assert len(episodes) == 30 and {ep["policy"] for ep in episodes} == set(MIX)
    for ep in episodes:
        t = len(ep["rewards"])
        assert ep["observations"].shape == (t + 1, 4) and ep["actions"].shape == (t, 2)
        assert not (ep["risk_events"] & ~ep["in_risky_region"]).any() and not ep["collisions"].any()
        assert ep["terminations"][-1] or ep["truncations"][-1]
    data = minari.MinariDataset(dataset_dir / "data")
    np.testing.assert_array_equal(next(data.iterate_episodes()).observations, episodes[0]["observations"])
    meta = dataset_metadata(dataset_dir)
    assert meta["dataset_id"] == "riskypointmass/small-v0" and meta["risk_prob"] == 0.9


def test_collection_is_reproducible(dataset_dir, tmp_path):
    again = tmp_path / "again-v0"
    collect(episodes=4, out=again, mix=MIX, seed=2, progress=False)
    for a, b in zip(load_episodes(again), load_episodes(dataset_dir)[:4]):
        np.testing.assert_array_equal(a["observations"], b["observations"])
        np.testing.assert_array_equal(a["rewards"], b["rewards"])


def test_an_episode_with_other_dimensions_than_the_first_is_reported(dataset_dir, tmp_path):
    import h5py

    path = tmp_path / "copy" / "data" / "main_data.hdf5"
    path.parent.mkdir(parents=True)
    path.write_bytes((dataset_dir / "data" / "main_data.hdf5").read_bytes())
    with h5py.File(path, "a") as f:
        obs = f["episode_5/observations"][()]
        del f["episode_5/observations"]
        f["episode_5/observations"] = np.concatenate([obs, obs[:, :1]], axis=1)
    with pytest.raises(DatasetError, match=r"episode_5: field 'observations' has shape \(\d+, 5\), expected \(\d+, 4\)"):
        load_episodes(path)
