"""risk_layer_effect: the same plans scored by a map model's critic with and without the layout's risk layer."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("pybullet")
from risky_nav.env import RiskyNavEnv  # noqa: E402
from risky_nav.occupancy import occupancy_grid, risk_grid  # noqa: E402

from rs_diffuser_ros.core.map_input import PlanningMap  # noqa: E402
from rs_diffuser_ros.core.planner import RiskSensitivePlanner  # noqa: E402
from rs_diffuser_ros.diagnostics import risk_layer_effect  # noqa: E402
from rs_diffuser_ros.shipped import resolve_model  # noqa: E402


def test_plans_scored_as_carried_rows_get_the_values_they_got_when_sampled_and_the_risk_layer_moves_them():
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    env = RiskyNavEnv("default")
    obs, _ = env.reset(seed=1000)
    env.close()
    state, goal = obs[:6], obs[6:8]
    occupancy, risk = occupancy_grid(env.layout), risk_grid(env.layout)
    read = dict(safe_distance=planner.config.model.map_safe_distance,
                passable_clearance_m=planner.config.model.map_passable_clearance_m)
    with_risk = PlanningMap.from_grids(occupancy, risk, **read)
    without = PlanningMap.from_grids(occupancy, dataclasses.replace(risk, data=np.zeros_like(risk.data)), **read)
    sampled = planner.plan_batch(state[None], goal[None], alpha=0.1, candidates=16, seed=3, map_input=with_risk)[0]
    again = risk_layer_effect.critic_values(planner, state, goal, sampled.candidates, with_risk, 0.1)
    np.testing.assert_allclose(again, sampled.risk_values, atol=1e-3)
    blind = risk_layer_effect.critic_values(planner, state, goal, sampled.candidates, without, 0.1)
    assert np.abs(blind - again).max() > 0.1  # this critic reads the risk layer (the tool measures how)


def test_a_per_map_model_is_refused_by_name():
    with pytest.raises(SystemExit, match="per-map model"):
        risk_layer_effect.main(["--checkpoint", "default", "--seeds", "1"])


def test_a_placed_start_is_where_it_was_asked_facing_the_heading_at_rest_and_is_what_gets_scored():
    state = risk_layer_effect.placed(np.array([1.5, 4.0, 0.3, 0.95, 0.8, 0.2], np.float32), (3.0, 4.5), np.pi / 2)
    np.testing.assert_allclose(state, [3.0, 4.5, 1.0, 0.0, 0.0, 0.0], atol=1e-6)
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    row = risk_layer_effect.effect_at_start(planner, "default", 1000, 8, 0.1, 0.5, start_xy=(3.0, 4.0))
    np.testing.assert_allclose(row["start"], [3.0, 4.0])
