"""Training windows: padding past the episode end, Monte-Carlo returns, transition alignment, bad input."""
import numpy as np
import pytest
import torch

from rs_diffuser_ros.core.config import ConfigError, CoreConfig
from rs_diffuser_ros.core.training.windows import WindowDataset, discounted_returns
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)


def _episode(t, offset=0.0):
    obs = np.zeros((t + 1, 8), np.float32)
    obs[:, 0] = np.arange(t + 1) + offset  # x counts steps, so indices are visible
    obs[:, 6:] = [10.0, 20.0]
    return {"observations": obs, "actions": np.stack([np.arange(t), -np.arange(t)], 1).astype(np.float32),
            "rewards": np.arange(1, t + 1, dtype=np.float64)}


def test_discounted_returns_match_the_definition():
    r = np.array([1.0, 0.0, -2.0, 3.0])
    g = 0.9
    want = [sum(g ** (k - t) * r[k] for k in range(t, 4)) for t in range(4)]
    np.testing.assert_allclose(discounted_returns(r, g), want)


def test_windows_pad_by_repeating_the_last_state_and_stay_in_their_episode():
    data = WindowDataset.from_episodes([_episode(3), _episode(5, offset=100)], horizon=4, gamma=0.5)
    assert len(data) == 3 + 5  # one window per step
    b = data.batch(torch.arange(len(data)))
    np.testing.assert_array_equal(b["windows"][0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(b["windows"][2, :, 0], [2, 3, 3, 3])  # padded with the terminal state
    np.testing.assert_array_equal(b["windows"][3, :, 0], [100, 101, 102, 103])  # second episode starts clean
    np.testing.assert_array_equal(b["windows"][7, :, 0], [104, 105, 105, 105])
    np.testing.assert_array_equal(b["goal"][0], [10, 20])


def test_returns_and_transitions_line_up():
    data = WindowDataset.from_episodes([_episode(3)], horizon=2, gamma=0.5)
    b = data.batch(torch.arange(3))
    np.testing.assert_allclose(b["return"], [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3])
    np.testing.assert_array_equal(b["state"][:, 0], [0, 1, 2])
    np.testing.assert_array_equal(b["next_state"][:, 0], [1, 2, 3])
    np.testing.assert_array_equal(b["action"][:, 0], [0, 1, 2])


def test_a_plan_stride_takes_every_strideth_state_and_pairs_the_action_with_the_next_plan_state():
    """model.plan_stride = 2: a 4-state window spans 6 control periods; the inverse dynamics' pair is (s_t, s_t+2)."""
    data = WindowDataset.from_episodes([_episode(5), _episode(3, offset=100)], horizon=4, gamma=1.0, stride=2)
    assert len(data) == 5 + 3  # still one window per step
    b = data.batch(torch.arange(len(data)))
    np.testing.assert_array_equal(b["windows"][0, :, 0], [0, 2, 4, 5])  # padded with the terminal state
    np.testing.assert_array_equal(b["windows"][1, :, 0], [1, 3, 5, 5])
    np.testing.assert_array_equal(b["windows"][5, :, 0], [100, 102, 103, 103])  # stays in its own episode
    np.testing.assert_array_equal(b["next_state"][:, 0], [2, 3, 4, 5, 5, 102, 103, 103])
    np.testing.assert_array_equal(b["next_state"][:, 0], b["windows"][:, 1, 0])  # what the IDM reads in training
    np.testing.assert_allclose(b["return"][:5], [15, 14, 12, 9, 5])  # the return is still to the episode's end
    assert data.to("cpu").stride == 2
    with pytest.raises(ValueError, match="plan_stride"):
        WindowDataset.from_episodes([_episode(3)], horizon=4, gamma=1.0, stride=0)
    with pytest.raises(ConfigError, match="model.plan_stride must be a positive int, got 0"):
        CoreConfig.from_dict({"model": {"plan_stride": 0}})


def test_attribute_style_episodes_are_accepted():
    class Record:
        def __init__(self, d):
            self.__dict__.update(d)

    assert len(WindowDataset.from_episodes([Record(_episode(4))], horizon=2, gamma=0.9)) == 4


@pytest.mark.parametrize("mutate,match", [
    (lambda e: e.pop("rewards"), "episode 0 has no field 'rewards'"),
    (lambda e: e.update(observations=np.zeros((4, 7), np.float32)), r"episode 0 field 'observations' must be \[T\+1, 8\]"),
    (lambda e: e.update(observations=np.zeros((6, 8), np.float32)), "episode 0 has 3 rewards but 6 observations"),
    (lambda e: e.update(actions=np.zeros((3, 3), np.float32)), r"episode 0 field 'actions' must be \[3, 2\]"),
    (lambda e: e["rewards"].__setitem__(1, np.nan), "episode 0 field 'rewards' has non-finite"),
])
def test_bad_episodes_are_named(mutate, match):
    ep = _episode(3)
    mutate(ep)
    with pytest.raises(ValueError, match=f"my_data: {match}"):
        WindowDataset.from_episodes([ep], horizon=2, gamma=0.9, source="my_data")


def test_no_episodes_is_an_error():
    with pytest.raises(ValueError, match="no episodes"):
        WindowDataset.from_episodes([], horizon=2, gamma=0.9)


def _stuck(t):
    """An episode pinned on a wall until the time limit: no termination, a large cost every step."""
    ep = _episode(t, offset=200)
    ep["rewards"] = np.full(t, -50.0)
    ep["terminations"] = np.zeros(t, bool)
    return ep


def _arrived(t, offset=0.0):
    ep = _episode(t, offset)
    ep["terminations"] = np.arange(t) == t - 1
    return ep


def test_windows_know_whether_their_episode_arrived_and_its_returns_can_leave_the_stuck_ones_out():
    data = WindowDataset.from_episodes([_arrived(3), _stuck(4), _arrived(2, offset=100)], horizon=2, gamma=1.0)
    np.testing.assert_array_equal(data.arrived.numpy(), [1, 1, 1, 0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(data.batch(torch.tensor([0, 4]))["arrived"].numpy(), [1, 0])
    np.testing.assert_allclose(data.window_returns(arrived_only=True).numpy(), [6, 5, 3, 3, 2])
    assert len(data.window_returns()) == 9


def test_episodes_without_terminations_leave_arrival_unknown_and_say_so():
    data = WindowDataset.from_episodes([_arrived(3), _episode(2)], horizon=2, gamma=1.0)
    assert data.arrived is None and "arrived" not in data.batch(torch.tensor([0]))
    with pytest.raises(ValueError, match="carry no terminations"):
        data.window_returns(arrived_only=True)
