"""RiskyNavEnv behaviour: API, determinism, risk-event frequency, collisions, goal, time limit."""
import math

import gymnasium as gym
import numpy as np
import pytest
import yaml
from gymnasium.utils.env_checker import check_env

import risky_nav  # noqa: F401  (registers RiskyNav-v0)
from risky_nav.env import RiskyNavEnv
from risky_nav.layout import LAYOUT_DIR, load_layout, parse_layout
from risky_nav.occupancy import OCCUPIED, FREE


def layout_with_p(p: float):
    raw = yaml.safe_load((LAYOUT_DIR / "default.yaml").read_text())
    raw["risky_regions"][0]["p"] = p
    return parse_layout(raw, source=f"default with p={p}")


@pytest.fixture()
def env():
    environment = RiskyNavEnv("default")
    yield environment
    environment.close()


def test_gymnasium_make_and_env_checker_pass():
    env = gym.make("RiskyNav-v0", layout="default")
    obs, info = env.reset(seed=0)
    assert obs.shape == (8,) and obs.dtype == np.float32
    assert env.observation_space.contains(obs)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_observation_layout_matches_the_contract(env):
    obs, _ = env.reset(options={"start": [1.5, 4.0, 0.5], "goal": [10.5, 3.8]})
    np.testing.assert_allclose(obs, [1.5, 4.0, math.sin(0.5), math.cos(0.5), 0, 0, 10.5, 3.8], atol=1e-6)
    obs, *_ = env.step([1.0, 0.0])
    assert 0 < obs[4] <= 1.0 and obs[0] > 1.5     # accelerating forward along yaw 0.5
    assert obs[5] == 0.0


def test_acceleration_and_velocity_limits(env):
    env.reset(options={"start": [1.5, 4.0, 0.0], "goal": [10.5, 4.0]})
    obs, *_ = env.step([5.0, 10.0])               # far beyond the limits
    lim = env.layout.robot
    assert obs[4] == pytest.approx(lim.max_accel * 0.1)
    assert obs[5] == pytest.approx(lim.max_alpha * 0.1)
    for _ in range(20):
        obs, *_ = env.step([5.0, 10.0])
    assert obs[4] == pytest.approx(lim.max_v) and obs[5] == pytest.approx(lim.max_omega)


def _rollout(env, seed, steps=150):
    rng = np.random.default_rng(123)
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for _ in range(steps):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 2))
        trace.append(np.concatenate([obs, [reward, info["risk_event"], info["collision"]]]))
        if terminated or truncated:
            obs, _ = env.reset()
    return trace


def test_same_seed_gives_identical_episodes():
    a, b = RiskyNavEnv("default"), RiskyNavEnv("default")
    trace_a, trace_b = _rollout(a, seed=7), _rollout(b, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(trace_a, trace_b))
    trace_c = _rollout(b, seed=8)
    assert not np.array_equal(trace_a[0], trace_c[0])
    a.close()
    b.close()


def test_risk_event_frequency_matches_p():
    """Hold the robot still inside the risky region: events ~ Binomial(n, p)."""
    p, n = 0.2, 3000
    env = RiskyNavEnv(layout_with_p(p))
    region = env.layout.risky_regions[0]
    start = {"start": [region.box.center_x, region.box.center_y, 0.0], "goal": [10.5, 4.0]}
    env.reset(seed=3, options=start)
    events, step_cost = 0, env.layout.reward.step_cost
    for _ in range(n):
        _, reward, terminated, truncated, info = env.step([0.0, 0.0])
        assert info["in_risky_region"]
        # Standing still: the reward is the step cost plus the penalty when an event struck.
        assert reward == pytest.approx(-step_cost - (region.penalty if info["risk_event"] else 0.0))
        events += info["risk_event"]
        if truncated:
            env.reset(options=start)
    env.close()
    bound = 4.5 * math.sqrt(n * p * (1 - p))      # ~1e-5 chance of a false failure
    assert abs(events - n * p) < bound, (events, n * p, bound)


def test_default_layout_event_rate_per_step():
    env = RiskyNavEnv("default")
    region = env.layout.risky_regions[0]
    start = {"start": [region.box.center_x, region.box.center_y, 0.0], "goal": [10.5, 4.0]}
    env.reset(seed=11, options=start)
    n, events = 20000, 0
    for _ in range(n):
        _, _, _, truncated, info = env.step([0.0, 0.0])
        events += info["risk_event"]
        if truncated:
            env.reset(options=start)
    env.close()
    assert abs(events - n * region.p) < 4.5 * math.sqrt(n * region.p * (1 - region.p))


def test_no_event_outside_risky_regions_even_with_p_one():
    env = RiskyNavEnv(layout_with_p(1.0))
    env.reset(seed=0, options={"start": [1.5, 4.0, 0.0], "goal": [10.5, 4.0]})
    infos = [env.step([0.0, 0.0])[4] for _ in range(50)]
    assert not any(i["risk_event"] or i["in_risky_region"] for i in infos)
    env.reset(options={"start": [6.0, 4.0, 0.0], "goal": [10.5, 4.0]})
    assert all(env.step([0.0, 0.0])[4]["risk_event"] for _ in range(50))
    env.close()


def test_driving_into_a_wall_is_reported_and_the_robot_stays_outside(env):
    env.reset(options={"start": [1.0, 4.0, math.pi], "goal": [10.5, 4.0]})   # facing the left wall
    collisions, rewards = [], []
    for _ in range(30):
        obs, reward, _, _, info = env.step([1.0, 0.0])
        collisions.append(info["collision"])
        rewards.append(reward)
    wall_face = env.layout.wall_thickness
    assert any(collisions) and collisions[-1]
    assert obs[0] >= wall_face + env.layout.robot.radius - 0.03    # pushed back, not through
    first = collisions.index(True)
    assert not any(collisions[:3])                # started 0.7 m away: no contact at once
    assert rewards[first] < -env.layout.reward.collision_penalty + 0.1


def test_driving_into_an_obstacle_is_reported(env):
    obstacle = env.layout.obstacles[0]
    env.reset(options={"start": [obstacle.center_x, obstacle.y_max + 0.6, -math.pi / 2],
                       "goal": [10.5, 4.0]})
    assert any(env.step([1.0, 0.0])[4]["collision"] for _ in range(20))


def test_driving_in_the_open_reports_no_collision(env):
    env.reset(options={"start": [1.5, 4.0, 0.0], "goal": [10.5, 4.0]})
    assert not any(env.step([1.0, 0.0])[4]["collision"] for _ in range(15))


def test_reaching_the_goal_terminates_with_the_bonus(env):
    env.reset(options={"start": [9.5, 4.0, 0.0], "goal": [10.5, 4.0]})
    for _ in range(40):
        obs, reward, terminated, truncated, info = env.step([0.6, 0.0])
        if terminated:
            break
    assert terminated and not truncated and info["goal_reached"]
    assert reward > env.layout.reward.goal_bonus - 1.0


def test_time_limit_truncates(env):
    env.reset(seed=0)
    for step in range(1, env.max_episode_steps + 1):
        _, _, terminated, truncated, _ = env.step([0.0, 0.0])
        assert not terminated
        assert truncated == (step == env.max_episode_steps)
    assert env.max_episode_steps == round(env.layout.time_limit / 0.1)


def test_reset_rejects_a_start_inside_an_obstacle(env):
    obstacle = env.layout.obstacles[0]
    with pytest.raises(ValueError, match="start"):
        env.reset(options={"start": [obstacle.center_x, obstacle.center_y]})


def test_bad_action_is_rejected(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step([float("nan"), 0.0])


def test_random_starts_and_goals_lie_in_their_regions(env):
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert env.layout.start_region.contains(obs[0], obs[1])
        assert env.layout.goal_region.contains(obs[6], obs[7])
        obs, _ = env.reset(seed=seed, options={"start_anywhere": True, "goal_anywhere": True})
        assert env.layout.is_free(obs[0], obs[1]) and env.layout.is_free(obs[6], obs[7])


def test_occupancy_grid_marks_walls_and_obstacles(env):
    grid = env.occupancy_grid()
    layout = env.layout
    assert grid.resolution <= 0.1 and grid.data.dtype == np.int8
    assert grid.data.shape == (round(layout.height / grid.resolution), round(layout.width / grid.resolution))
    assert set(np.unique(grid.data)) == {FREE, OCCUPIED}
    for box in layout.obstacles:
        assert grid.data[grid.cell_of(box.center_x, box.center_y)] == OCCUPIED
    assert grid.data[grid.cell_of(0.02, 4.0)] == OCCUPIED          # left wall
    assert grid.data[grid.cell_of(1.5, 4.0)] == FREE               # start region
    assert grid.data[grid.cell_of(6.0, 4.0)] == FREE               # risky, but not an obstacle
    occupied_share = (grid.data == OCCUPIED).mean()
    solid_area = sum(b.size_x * b.size_y for b in layout.obstacles)
    assert occupied_share > solid_area / (layout.width * layout.height)


def test_every_shipped_layout_runs():
    for name in risky_nav.available_layouts():
        env = RiskyNavEnv(load_layout(name))
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        for _ in range(5):
            obs, *_ = env.step(env.action_space.sample())
        env.close()


def test_set_goal_moves_the_goal_mid_episode(env):
    env.reset(options={"start": [9.0, 4.0, 0.0], "goal": [1.5, 4.0]})
    env.set_goal([10.0, 4.0])
    for _ in range(40):
        obs, _, terminated, _, _ = env.step([0.6, 0.0])
        if terminated:
            break
    assert terminated and tuple(obs[6:8]) == (10.0, 4.0)
    with pytest.raises(ValueError, match="goal"):
        env.set_goal([6.0, 1.0])     # inside the lower block
