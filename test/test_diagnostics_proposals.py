"""diagnostics/proposals.py: which of a map model's candidates enter a risky region from recorded states, and which
its critic picks."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from risky_nav.layout import load_layout
from risky_nav.occupancy import occupancy_grid, risk_grid
from risky_nav.risk_exposure import region_exposure
from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.diagnostics import proposals
from rs_diffuser_ros.shipped import resolve_model
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)

LAYOUT = load_layout("default")  # passage: x 4-8, y 2.9-5.1; start (1.5, 4), goal (10.5, 4)


def _episode(xy: np.ndarray) -> dict:
    """A recorded episode along positions xy [T+1, 2] at 1 m/s heading east, goal (10.5, 4)."""
    t = len(xy) - 1
    obs = np.zeros((t + 1, 8), np.float32)
    obs[:, :2], obs[:, 3], obs[:, 4], obs[:, 6:] = xy, 1.0, 1.0, (10.5, 4.0)
    p, _ = region_exposure(LAYOUT, xy[1:])
    return {"observations": obs, "rewards": np.full(t, -0.1), "in_risky_region": (p > 0).any(1)}


def test_a_plan_enters_when_any_state_lies_in_a_risky_region():
    straight = np.stack([np.linspace(2.0, 4.2, 32), np.full(32, 4.0)], 1)
    short = np.stack([np.linspace(2.0, 3.9, 32), np.full(32, 4.0)], 1)
    north = np.stack([np.full(32, 5.0), np.linspace(5.2, 7.0, 32)], 1)  # above the passage's y 5.1
    assert proposals.enters_risk(np.stack([straight, short, north]), LAYOUT).tolist() == [True, False, False]


def test_from_a_state_heading_into_the_passage_the_general_models_candidates_enter_it():
    crossing = _episode(np.stack([np.linspace(1.5, 9.0, 76), np.full(76, 4.0)], 1))  # enters at step 25 (x 4.0)
    keep_out = _episode(np.stack([np.full(51, 1.5), np.linspace(4.0, 4.5, 51)], 1))  # creeps north, never enters
    assert crossing["in_risky_region"].any() and not keep_out["in_risky_region"].any()
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    planner.configure(route_candidates=0)  # the denoiser's own proposals, none held to a route
    pm = PlanningMap.from_grids(occupancy_grid(LAYOUT), risk_grid(LAYOUT), safe_distance=True,
                                passable_clearance_m=planner.config.model.map_passable_clearance_m)
    rows = proposals.probe(planner, pm, LAYOUT, [crossing, keep_out], alpha=1.0, candidates=16, leads=(10,), times=(10,))
    assert [(r["kind"], r["step"], r["states"]) for r in rows] == [("crossing", 10, 1), ("keep-out", 10, 1)]
    # 1 s (0.9 m) short of the passage, heading straight at it at 1 m/s: a 3.1 s plan that stays out would have to
    # stop or turn hard; the model proposes going on.
    assert rows[0]["entering"] >= 0.75
    table = proposals.markdown_table(rows, 1.0)
    assert "crossing episodes, 1 s before they entered" in table and "keep-out episodes, 1 s in" in table


class _TwoRoutePlanner:
    """Stands in for the planner's sampling only: per state, candidate 0 runs into the passage, candidate 1 north of
    it, with fixed risk values and pick, so the probe's bookkeeping can be checked exactly."""

    state_dim = 6

    def __init__(self, chosen: int):
        self.chosen = chosen

    def plan_batch(self, states, goals, alpha, candidates, seed, map_input):
        into = np.stack([np.linspace(3.0, 4.5, 32), np.full(32, 4.0)], 1)
        north = np.stack([np.full(32, 3.0), np.linspace(5.3, 6.5, 32)], 1)
        plans = np.concatenate([np.stack([into, north]), np.zeros((2, 32, 4))], 2)
        return [SimpleNamespace(candidates=plans, risk_values=np.array([1.0, 3.0]), chosen_index=self.chosen)
                for _ in states]


def test_the_probe_counts_entering_candidates_their_risk_values_and_the_picks():
    crossing = _episode(np.stack([np.linspace(1.5, 9.0, 76), np.full(76, 4.0)], 1))
    for chosen, out in ((0, 0.0), (1, 1.0)):
        rows = proposals.probe(_TwoRoutePlanner(chosen), None, LAYOUT, [crossing, crossing], leads=(10, 20), times=(5,))
        assert [(r["kind"], r["step"], r["states"]) for r in rows] == [("crossing", 10, 2), ("crossing", 20, 2)]
        for r in rows:  # no keep-out episode: no keep-out row
            assert (r["entering"], r["cvar_entering"], r["cvar_out"], r["picked_out"]) == (0.5, 1.0, 3.0, out)
            assert (r["both"], r["prefers_out"]) == (2, 1.0)  # the north candidate (3.0) outscores the passage (1.0)
    table = proposals.markdown_table([{**rows[0], "cvar_out": math.nan}], 0.1)
    assert "| crossing episodes, 1 s before they entered | 2 | 50 % | 1.00 / - | 100 % | 2: 100 % |" in table
    assert math.isnan(rows[0]["entering_label0"]) and "label 0" not in table  # no route label: no split


def test_a_route_label_models_candidates_are_split_as_the_planner_asks_them():
    """Candidate 0 (the first half: label 0, asked to stay out) runs into the passage, candidate 1 (label 1) north."""
    labelled = _TwoRoutePlanner(chosen=1)
    labelled.config = SimpleNamespace(model=SimpleNamespace(route_label=True))
    crossing = _episode(np.stack([np.linspace(1.5, 9.0, 76), np.full(76, 4.0)], 1))
    rows = proposals.probe(labelled, None, LAYOUT, [crossing], leads=(10,), times=())
    assert (rows[0]["entering_label0"], rows[0]["entering_label1"]) == (1.0, 0.0)
    assert "| 50 % | 1.00 / 3.00 | 100 % | 1: 100 % | 100 % / 0 % |" in proposals.markdown_table(rows, 0.1)
