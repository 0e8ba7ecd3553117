"""route_choice: the split of candidate plans into the way round risk and the short cut, on any map."""
import numpy as np
import pytest
import torch

pytest.importorskip("pybullet")
from risky_nav.layout import load_layout  # noqa: E402
from risky_nav.occupancy import occupancy_grid, risk_grid  # noqa: E402

from rs_diffuser_ros.core.map_input import PlanningMap  # noqa: E402
from rs_diffuser_ros.diagnostics import route_choice  # noqa: E402


def _line(start, end, steps=32):
    xy = np.linspace(start, end, steps)
    return np.concatenate([xy, np.zeros((steps, 4))], 1)


def test_a_window_towards_the_detour_corridor_goes_round_and_one_into_the_passage_does_not():
    layout = load_layout("default")  # start (1.5, 3.6), goal (10.5, 4.1); passage y 2.9-5.1, detour north of y 6.7
    pm = PlanningMap.from_grids(occupancy_grid(layout), risk_grid(layout), safe_distance=True)
    fields = pm.distance_fields(torch.tensor([[10.5, 4.1]]))[0]
    plans = np.stack([_line((1.5, 3.6), (4.4, 3.8)), _line((1.5, 3.6), (3.0, 6.2)), _line((1.5, 3.6), (1.5, 3.6))])
    assert route_choice.goes_round(plans, fields, pm, margin_m=0.5).tolist() == [False, True, False]


def test_the_specialist_proposes_the_detour_and_ranks_it_first_at_a_low_alpha(capsys):
    # The shipped default model is the one that trades risk on its layout (docs/evaluation.md).
    assert route_choice.main(["--checkpoint", "default", "--layout", "default", "--candidates", "64"]) == 0
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and "%" in line}
    share, values, best = rows["averse:0.1"]
    assert float(share.strip(" %")) > 20
    round_value, short_value = (float(v) for v in values.split("/"))
    assert round_value > short_value
    assert best.strip().startswith("8 of")
