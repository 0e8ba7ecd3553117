"""eval/first_plan_split.py: the probe the general model's DDS alpha test was picked by, through the controller."""
import pytest
import torch
from risky_nav.mapgen import generate_map
from risky_nav.occupancy import risk_grid

from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.eval import first_plan_split
from rs_diffuser_ros.shipped import resolve_model

MAP_SEED, PLANNER_SEED = 1_000_024, 6  # the DDS test's pair


def test_at_the_dds_tests_pair_the_first_plans_part_with_alpha():
    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    layout = generate_map(MAP_SEED).layout
    assert first_plan_split.split_seeds(planner, layout, [PLANNER_SEED], (1.0, 0.05)) == [PLANNER_SEED]
    # Asked the other way round (the cautious plan should enter), the same pair does not part.
    assert first_plan_split.split_seeds(planner, layout, [PLANNER_SEED], (0.05, 1.0)) == []
    assert risk_grid(layout).data.max() > 0


def test_a_per_map_model_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        first_plan_split.main(["--checkpoint", "default", "--seeds", "1"])
    assert "is a per-map model" in capsys.readouterr().err
