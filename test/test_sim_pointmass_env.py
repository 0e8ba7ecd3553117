"""RiskyPointMassEnv pins every rule of CODAC's env/risky_pointmass.py (see the env's docstring)."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import risky_pointmass
from risky_pointmass.env import RiskyPointMassEnv, in_disc


def test_gymnasium_make_and_env_checker_pass():
    env = gym.make(risky_pointmass.ENV_ID)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    np.testing.assert_allclose(obs[2:], [0.1, 0.1], atol=1e-7)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.risk_prob == 0.9 and env.unwrapped.risk_penalty == 50.0


def test_action_is_clipped_per_axis_and_state_to_the_unit_square():
    env = RiskyPointMassEnv()
    env.reset(seed=0, options={"start": [0.95, 0.02]})
    obs, *_ = env.step([0.5, -0.03])
    np.testing.assert_allclose(obs[:2], [1.0, 0.0], atol=1e-7)      # +0.1 then clipped at 1; -0.03 clipped at 0
    env.reset(options={"start": [0.5, 0.95]})
    obs, *_ = env.step([-7.0, 0.04])
    np.testing.assert_allclose(obs[:2], [0.4, 0.99], atol=1e-6)


def test_disc_is_radius_0_3_around_the_centre():
    assert in_disc([0.5, 0.5]) and in_disc([0.8 - 1e-9, 0.5]) and in_disc([0.5, 0.2 + 1e-9])
    assert not in_disc([0.8 + 1e-9, 0.5]) and not in_disc([0.1, 0.1]) and not in_disc([0.85, 0.85])
    np.testing.assert_array_equal(in_disc(np.array([[0.5, 0.79], [0.28, 0.28]])), [True, False])


def test_reward_and_risk_look_at_the_state_the_step_starts_from():
    env = RiskyPointMassEnv(risk_prob=0.0)          # penalty on every step that starts inside
    env.reset(options={"start": [0.85, 0.5]})        # outside, next to the disc
    _, reward, _, _, info = env.step([-0.1, 0.0])    # moves inside: not penalised yet
    assert not info["in_risky_region"] and not info["risk_event"]
    assert reward == pytest.approx(-np.hypot(0.75, 0.4) - 0.1)
    _, reward, _, _, info = env.step([0.1, 0.0])     # starts inside, leaves: penalised
    assert info["in_risky_region"] and info["risk_event"] and info["collision"] is False
    assert reward == pytest.approx(-np.hypot(0.65, 0.4) - 0.1 - 50.0)


@pytest.mark.parametrize("risk_prob", [0.9, 0.7])
def test_penalty_strikes_with_probability_one_minus_risk_prob(risk_prob):
    env = RiskyPointMassEnv(risk_prob=risk_prob)
    env.reset(seed=3, options={"start": [0.5, 0.5]})
    n, events = 20_000, 0
    for _ in range(n):
        _, reward, *_, info = env.step([0.0, 0.0])   # stays at the centre
        events += info["risk_event"]
        assert reward == pytest.approx(-np.hypot(0.4, 0.4) - 0.1 - 50.0 * info["risk_event"])
        env._steps = 0                               # keep stepping past the time limit for the count
    rate, p = events / n, 1 - risk_prob
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_no_penalty_outside_the_disc():
    env = RiskyPointMassEnv(risk_prob=0.0)
    env.reset(options={"start": [0.9, 0.1]})
    for _ in range(50):
        _, reward, *_, info = env.step([0.0, 0.0])
        assert not info["risk_event"] and reward > -2


def test_terminates_one_step_after_arriving_within_0_05():
    env = RiskyPointMassEnv()
    env.reset(options={"start": [0.2, 0.1]})
    _, _, terminated, _, _ = env.step([-0.06, 0.0])   # starts 0.1 away: arrives (0.04), not yet done
    assert not terminated
    _, reward, terminated, truncated, _ = env.step([0.0, 0.0])
    assert terminated and not truncated and reward == pytest.approx(-0.04 - 0.1)
    env.reset(options={"start": [0.151, 0.1]})        # just over 0.05 away is not arrived
    assert not env.step([0.0, 0.0])[2]


def test_truncates_after_100_steps():
    env = RiskyPointMassEnv()
    env.reset(seed=1, options={"start": [0.9, 0.1]})
    flags = [env.step([0.0, 0.0])[2:4] for _ in range(100)]
    assert all(f == (False, False) for f in flags[:99]) and flags[99] == (False, True)


def test_training_starts_are_uniform_outside_the_disc():
    env = RiskyPointMassEnv()
    starts = np.array([env.reset(seed=s)[0][:2] for s in range(3000)])
    assert starts.min() >= 0.1 and starts.max() <= 0.9
    assert not in_disc(starts).any()
    # Uniform on the allowed area: the share in the left half is 1/2, in the corner [0.1, 0.2]^2 is 0.01 / A.
    area = 0.8 ** 2 - np.pi * 0.3 ** 2
    corner = np.all(starts < 0.2, axis=1).mean()
    assert abs((starts[:, 0] < 0.5).mean() - 0.5) < 0.04
    assert abs(corner - 0.01 / area) < 0.012


def test_evaluation_starts_are_near_0_85():
    env = RiskyPointMassEnv()
    starts = np.array([env.reset(seed=s, options={"eval": True})[0][:2] for s in range(2000)])
    assert starts.min() >= 0.8 and starts.max() <= 0.85
    np.testing.assert_allclose(starts.mean(0), [0.825, 0.825], atol=0.003)
    assert starts.std(0).min() > 0.012                       # U(-0.05, 0) has std 0.0144


def test_same_seed_same_episode():
    def run(seed):
        env = RiskyPointMassEnv(risk_prob=0.5)
        env.reset(seed=seed, options={"eval": True})
        return [env.step([-0.05, -0.05])[1] for _ in range(12)]
    assert run(7) == run(7) and run(7) != run(8)


def test_bad_input_is_reported():
    env = RiskyPointMassEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action must be 2 finite"):
        env.step([np.nan, 0.0])
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(options={"goal": [0.5, 0.5]})
    with pytest.raises(ValueError, match="'start'"):
        env.reset(options={"start": [1.5, 0.5]})
    with pytest.raises(ValueError, match="risk_prob"):
        RiskyPointMassEnv(risk_prob=1.5)
