"""The critic reads risk at the map's own resolution as well as the patch's (core/risk_read.py).

Found on fresh2 map gen2100014 (a tuning map; env seed 1284, averse:0.1): four ticks running the chosen plan had one
state 1 - 4 cm inside a region's corner, which the patch's 0.2 m cells blurred to a fraction of the region's risk, and
the robot's centre ended two steps inside the region.
"""
import numpy as np
import pytest
import torch
from risky_nav.mapgen import generate_map
from risky_nav.occupancy import OccupancyGrid

from rs_diffuser_ros.core.conditioning import MapView
from rs_diffuser_ros.core.map_input import PATCH_CHANNELS, PlanningMap, sample_along
from rs_diffuser_ros.core.normalizer import LimitsNormalizer
from rs_diffuser_ros.core.risk_read import MapRiskRead
from rs_diffuser_ros.eval.episode_trace import trace

RISK, HAZARD = PATCH_CHANNELS.index("risk"), PATCH_CHANNELS.index("hazard")
EXTENT_M, CELLS = 6.4, 32


@pytest.fixture(scope="module")
def square():
    """A 6 x 6 m open map (0.05 m cells) whose risky square covers x, y in [3, 4] m; the robot at (2, 2)."""
    occupancy = np.zeros((120, 120), np.int8)
    hazard = np.zeros_like(occupancy)
    hazard[60:80, 60:80] = 40
    pm = PlanningMap.from_grids(OccupancyGrid(occupancy, 0.05, 0.0, 0.0), OccupancyGrid(hazard, 0.05, 0.0, 0.0))
    centre = torch.tensor([[2.0, 2.0]])
    fields = pm.fields_for(torch.tensor([[5.0, 5.0]]))
    patches = pm.layers.patches(centre, fields, CELLS, EXTENT_M)
    fine = MapRiskRead(MapRiskRead.dilate(pm.layers.layers), pm.layers.origin[0], pm.layers.resolution, centre)
    return patches, fine


def reads(square, points):
    """(patch alone, patch and map) risk and hazard at world points [(x, y)] (one plan of len(points) states)."""
    patches, fine = square
    xy = torch.tensor([points], dtype=torch.float32) - torch.tensor([2.0, 2.0])
    alone = sample_along(patches, xy, EXTENT_M)
    return alone[0], fine.sharpen(alone, xy)[0]


def test_a_state_a_few_centimetres_inside_a_corner_reads_the_whole_risk(square):
    alone, both = reads(square, [(3.03, 3.03)])
    assert alone[0, RISK] < 0.6  # the patch's blur: what the critic read before
    assert both[0, RISK] == pytest.approx(1.0)
    assert both[0, HAZARD] == pytest.approx(alone.new_tensor(np.log1p(40) / np.log(101)).item(), abs=1e-5)


def test_away_from_risk_the_read_is_the_patch_s(square):
    alone, both = reads(square, [(1.0, 1.0), (2.5, 3.5), (3.5, 2.4), (5.0, 5.0)])
    torch.testing.assert_close(both, alone)
    assert both[:, RISK].max() == 0.0


def test_the_other_channels_are_the_patch_s(square):
    alone, both = reads(square, [(3.03, 3.03), (3.5, 3.5), (2.9, 3.2)])
    others = [c for c in range(alone.shape[-1]) if c not in (RISK, HAZARD)]
    torch.testing.assert_close(both[:, others], alone[:, others])


def test_guidance_gets_a_gradient_out_of_the_region_s_edge(square):
    """Beyond a risky cell the read falls off (from 5 to 15 cm out): its gradient there points into the region, so
    ascending the critic's CVaR (which falls with risk) pushes a plan out."""
    patches, fine = square
    xy = (torch.tensor([[[2.9, 3.5]]]) - torch.tensor([2.0, 2.0])).requires_grad_(True)
    fine.sharpen(sample_along(patches, xy, EXTENT_M), xy)[0, 0, RISK].backward()
    assert xy.grad[0, 0, 0] > 0.0  # risk grows towards +x, into the square


def test_non_finite_plan_positions_read_no_risk_and_do_not_crash_the_backward_pass(square):
    patches, fine = square
    xy = torch.tensor([[[float("nan"), 0.0], [1e9, -1e9]]], requires_grad=True)
    out = fine.sharpen(sample_along(patches, xy, EXTENT_M), xy)
    out.sum().backward()
    assert out[0, :, RISK].tolist() == [0.0, 0.0]


def test_a_map_view_with_the_read_sharpens_what_its_along_returns(square):
    patches, fine = square
    plan = LimitsNormalizer(torch.tensor([-4.0, -4.0]), torch.tensor([4.0, 4.0]))
    windows = plan.normalize(torch.tensor([[[1.03, 1.03]]]))  # (3.03, 3.03) in the world
    plain = MapView(patches, EXTENT_M, plan).along(windows)
    sharp = MapView(patches, EXTENT_M, plan, risk_read=fine).along(windows)
    assert plain[0, 0, RISK] < 0.6 and sharp[0, 0, RISK] == pytest.approx(1.0)


def test_the_corner_clip_on_gen2100014_is_gone(tmp_path):
    """The episode of the report, closed loop on the shipped general model (CPU), the map generated from its seed."""
    torch.set_num_threads(1)
    generated = generate_map(2100014, kinds=("tradeoff",))
    path = tmp_path / f"{generated.layout.name}.yaml"
    path.write_text(generated.yaml_text())
    _, outcome = trace("general", path, "averse:0.1", 0, 1284, "cpu")
    assert outcome.success and outcome.collision_steps == 0
    assert outcome.violation_steps == 0  # 2 with the patch's read alone


def test_a_map_s_risk_layers_are_dilated_once_for_every_replan_on_it(monkeypatch):
    """The dilation is a pass over the whole map (27 ms on 2 CPU cores at 100 x 100 m): the planner takes it from the
    map's cache, and plans exactly as with the layers dilated afresh."""
    pytest.importorskip("pybullet")
    from risky_nav.env import RiskyNavEnv
    from risky_nav.occupancy import occupancy_grid, risk_grid

    from rs_diffuser_ros.core.planner import RiskSensitivePlanner
    from rs_diffuser_ros.shipped import resolve_model

    torch.set_num_threads(1)
    planner = RiskSensitivePlanner.from_checkpoint(resolve_model("general"), device="cpu")
    env = RiskyNavEnv("default")
    obs, _ = env.reset(seed=1000)
    env.close()
    read = dict(safe_distance=planner.config.model.map_safe_distance,
                passable_clearance_m=planner.config.model.map_passable_clearance_m)

    def new_map():
        return PlanningMap.from_grids(occupancy_grid(env.layout), risk_grid(env.layout), **read)

    dilations = []
    dilate = MapRiskRead.dilate
    monkeypatch.setattr(MapRiskRead, "dilate", staticmethod(lambda layers: dilations.append(1) or dilate(layers)))
    cached = new_map()
    results = [planner.plan_batch(obs[None, :6], obs[None, 6:8], alpha=0.1, candidates=8, seed=seed, map_input=m)[0]
               for seed, m in ((3, cached), (4, cached), (3, new_map()))]
    assert len(dilations) == 2  # once for each map, not for each of the three replans
    torch.testing.assert_close(cached.derived("risk_read", dilate), dilate(cached.layers.layers))
    np.testing.assert_array_equal(results[0].risk_values, results[2].risk_values)  # the cached read is the fresh one
    assert not np.array_equal(results[0].risk_values, results[1].risk_values)  # ... and another seed plans anew
