"""Behaviour-cloning baseline: it learns a known mapping, saves and loads exactly, refuses bad files."""
import numpy as np
import pytest
import torch

from rs_diffuser_ros.baselines import behaviour_cloning as bc


def synthetic_dataset(n_episodes=8, steps=30, seed=0):
    """Episodes whose action is a fixed smooth function of the observation."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n_episodes):
        obs = rng.uniform([0, 0, -1, -1, -1, -2, 0, 0], [12, 8, 1, 1, 1, 2, 12, 8], (steps + 1, 8)).astype(np.float32)
        v = np.tanh(0.3 * (obs[:-1, 6] - obs[:-1, 0]))
        omega = 1.5 * np.tanh(0.5 * (obs[:-1, 7] - obs[:-1, 1]))
        episodes.append({"observations": obs, "actions": np.stack([v, omega], 1).astype(np.float32)})
    return episodes


def test_loss_falls_and_the_policy_fits_the_mapping():
    obs, act = bc.transitions(synthetic_dataset())
    assert obs.shape == (240, 8) and act.shape == (240, 2)
    policy, history = bc.train(obs, act, steps=400, batch_size=64, hidden=64, log=None, log_every=50)
    first, last = history[0][1], history[-1][1]
    assert last < first / 5, history
    error = np.abs(policy.act(obs) - act).mean()
    assert error < 0.1, error


def test_save_and_load_round_trip(tmp_path):
    obs, act = bc.transitions(synthetic_dataset(2))
    policy, _ = bc.train(obs, act, steps=20, hidden=32, layers=2, log=None)
    path = bc.save(policy, tmp_path / "bc.safetensors", extra={"dataset": "synthetic"})
    loaded = bc.load(path)
    assert (loaded.hidden, loaded.layers) == (32, 2)
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))


def test_bad_checkpoints_and_episodes_are_named(tmp_path):
    with pytest.raises(bc.BehaviourCloningError, match="no such behaviour-cloning checkpoint"):
        bc.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(bc.BehaviourCloningError, match="junk.safetensors"):
        bc.load(junk)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other), metadata={"format": "something-else"})
    with pytest.raises(bc.BehaviourCloningError, match="'format' is 'something-else'"):
        bc.load(other)
    with pytest.raises(bc.BehaviourCloningError, match="episode 0 has no field 'actions'"):
        bc.transitions([{"observations": np.zeros((3, 8))}], source="ds")
    with pytest.raises(bc.BehaviourCloningError, match="episode 0 has observations"):
        bc.transitions([{"observations": np.zeros((3, 8)), "actions": np.zeros((3, 2))}], source="ds")
