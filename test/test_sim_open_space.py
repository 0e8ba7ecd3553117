"""OpenSpace: the env skips PyBullet's contact query only where no contact can exist."""
import numpy as np
import pytest

from risky_nav.env import CONTROL_PERIOD, RiskyNavEnv
from risky_nav.layout import available_layouts, load_layout
from risky_nav.open_space import CONTACT_MARGIN, OpenSpace


@pytest.mark.parametrize("name", available_layouts())
def test_open_points_keep_the_clearance_a_control_step_needs(name):
    layout = load_layout(name)
    travel = layout.robot.max_v * CONTROL_PERIOD
    space = OpenSpace(layout, travel)
    rng = np.random.default_rng(0)
    points = rng.uniform([-0.5, -0.5], [layout.width + 0.5, layout.height + 0.5], (4000, 2))
    is_open = np.array([space.is_open(x, y) for x, y in points])
    clearance = np.array([layout.clearance(x, y) for x, y in points])
    need = layout.robot.radius + travel + CONTACT_MARGIN
    assert np.all(clearance[is_open] > need)
    # Not vacuous: most of the free space counts as open, so the skip pays.
    assert is_open.mean() > 0.3
    inside = (points >= 0).all(1) & (points[:, 0] <= layout.width) & (points[:, 1] <= layout.height)
    assert not is_open[~inside].any()
    assert not space.is_open(float("nan"), 1.0)


def _held_random_run(env, seed, steps=1500, hold=8):
    """Random actions held for `hold` steps; -> (trace, steps with a collision, steps started in open space)."""
    rng = np.random.default_rng(seed)
    anywhere = {"start_anywhere": True, "goal_anywhere": True}
    obs, _ = env.reset(seed=seed, options=anywhere)
    trace, collisions, open_steps = [obs], 0, 0
    for t in range(steps):
        if t % hold == 0:
            action = rng.uniform(-1.2, 1.2, 2) * env.action_space.high + [0.4, 0.0]
        open_steps += env._open_space.is_open(*env.robot_pose()[:2])
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append(np.concatenate([obs, [reward, info["collision"], info["risk_event"]]]))
        collisions += info["collision"]
        if terminated or truncated:
            trace.append(env.reset(options=anywhere)[0])
    return np.concatenate(trace), collisions, open_steps


@pytest.mark.parametrize("name", ["default", "narrow_corridor"])
def test_skipping_the_contact_query_changes_nothing(name):
    """The same run with the query after every substep is identical to the last bit."""
    skipping, querying = RiskyNavEnv(name), RiskyNavEnv(name)
    querying._open_space.is_open = lambda x, y: False
    a, collisions, open_steps = _held_random_run(skipping, seed=3)
    b, _, _ = _held_random_run(querying, seed=3)
    skipping.close()
    querying.close()
    np.testing.assert_array_equal(a, b)
    # Not vacuous: the run both drives into walls and skips the query for many steps.
    assert collisions >= 20 and open_steps >= 300, (collisions, open_steps)
