"""Dataset collection and loading: Minari format, contract shapes, clear errors on bad files."""
import h5py
import numpy as np
import pytest

from risky_nav.collect import collect, parse_mix
from risky_nav.dataset import DatasetError, dataset_metadata, load_episodes

MIX = {"shortcut": 0.25, "detour": 0.25, "noisy_shortcut": 0.25, "random_detour": 0.25}


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets") / "riskynav" / "default-v0"
    collect("default", episodes=12, out=out, mix=MIX, anywhere=0.2, seed=5, progress=False)
    return out


def test_episodes_follow_the_contract(dataset_dir):
    episodes = load_episodes(dataset_dir)
    assert len(episodes) == 12
    for ep in episodes:
        t = len(ep["rewards"])
        assert ep["observations"].shape == (t + 1, 8) and ep["observations"].dtype == np.float32
        assert ep["actions"].shape == (t, 2)
        for key in ("terminations", "truncations", "risk_events", "collisions"):
            assert ep[key].shape == (t,) and ep[key].dtype == bool
        assert ep["terminations"][-1] or ep["truncations"][-1]
        assert not (ep["terminations"][:-1].any() or ep["truncations"][:-1].any())
        assert ep["policy"] in MIX
        # A risk event only strikes inside a risky region.
        assert not (ep["risk_events"] & ~ep["in_risky_region"]).any()


def test_dataset_mixes_both_routes(dataset_dir):
    episodes = load_episodes(dataset_dir)
    policies = {ep["policy"] for ep in episodes}
    assert any(p.endswith("shortcut") for p in policies) and any(p.endswith("detour") for p in policies)
    crossed = [ep["in_risky_region"].any() for ep in episodes if ep["policy"] == "detour"]
    assert not any(crossed)


def test_minari_reads_the_dataset(dataset_dir):
    import minari

    data = minari.MinariDataset(dataset_dir / "data")
    assert data.total_episodes == 12
    first = next(data.iterate_episodes())
    ours = load_episodes(dataset_dir)[0]
    np.testing.assert_array_equal(first.observations, ours["observations"])
    np.testing.assert_array_equal(first.infos["risk_event"][1:], ours["risk_events"])
    assert dataset_metadata(dataset_dir)["dataset_id"] == "riskynav/default-v0"


def test_collection_is_reproducible(dataset_dir, tmp_path):
    again = tmp_path / "again-v0"
    collect("default", episodes=3, out=again, mix=MIX, anywhere=0.2, seed=5, progress=False)
    for a, b in zip(load_episodes(again), load_episodes(dataset_dir)[:3]):
        np.testing.assert_array_equal(a["observations"], b["observations"])
        np.testing.assert_array_equal(a["rewards"], b["rewards"])


def test_writing_over_an_existing_dataset_is_refused(dataset_dir):
    with pytest.raises(DatasetError, match="already exists"):
        collect("default", episodes=1, out=dataset_dir, mix=MIX, anywhere=0.0, seed=0, progress=False)


def _copy(dataset_dir, tmp_path):
    src = dataset_dir / "data" / "main_data.hdf5"
    dst = tmp_path / "copy" / "data"
    dst.mkdir(parents=True)
    (dst / "main_data.hdf5").write_bytes(src.read_bytes())
    return dst / "main_data.hdf5"


def test_nan_is_reported_with_file_and_field(dataset_dir, tmp_path):
    path = _copy(dataset_dir, tmp_path)
    with h5py.File(path, "a") as f:
        f["episode_3/rewards"][5] = np.nan
    with pytest.raises(DatasetError) as err:
        load_episodes(path)
    assert "main_data.hdf5:episode_3" in str(err.value) and "'rewards'" in str(err.value)


def test_missing_field_is_reported_with_file_and_field(dataset_dir, tmp_path):
    path = _copy(dataset_dir, tmp_path)
    with h5py.File(path, "a") as f:
        del f["episode_0/infos/collision"]
    with pytest.raises(DatasetError, match=r"episode_0: missing field 'infos/collision'"):
        load_episodes(path.parent.parent)


def test_missing_dataset_is_reported(tmp_path):
    with pytest.raises(DatasetError, match="no Minari dataset"):
        load_episodes(tmp_path / "nothing-here")


def test_policy_mix_is_validated():
    assert parse_mix("shortcut=1,detour=3") == {"shortcut": 0.25, "detour": 0.75}
    with pytest.raises(SystemExit, match="unknown policy"):
        parse_mix("teleport=1")
