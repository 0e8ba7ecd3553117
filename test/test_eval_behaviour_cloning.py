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


def test_dimensions_come_from_the_data(tmp_path):
    """Risky PointMass: obs [x, y, goal_x, goal_y]; the same trainer, and the sizes survive a save."""
    rng = np.random.default_rng(1)
    obs = rng.uniform(0, 1, (41, 4)).astype(np.float32)
    episodes = [{"observations": obs, "actions": np.clip(obs[1:, 2:] - obs[:-1, :2], -0.1, 0.1).astype(np.float32)}]
    o, a = bc.transitions(episodes)
    policy, _ = bc.train(o, a, steps=30, hidden=16, layers=2, log=None)
    loaded = bc.load(bc.save(policy, tmp_path / "pm.safetensors"))
    assert (loaded.obs_dim, loaded.action_dim) == (4, 2) and loaded.act(o).shape == (40, 2)
    np.testing.assert_array_equal(loaded.act(o), policy.act(o))
    with pytest.raises(bc.BehaviourCloningError, match=r"episode 1 has observations \(3, 8\).*expected \[T\+1, 4\]"):
        bc.transitions(episodes + [{"observations": np.zeros((3, 8)), "actions": np.zeros((2, 2))}], source="ds")
