"""The risk layer of a layout (`risky_nav.occupancy.risk_grid`): what /risk_map carries, ROS-free."""
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from risky_nav.layout import LAYOUT_DIR, load_layout, parse_layout
from risky_nav.occupancy import (HAZARD_FULL_SCALE, SEVERITY_FULL_SCALE, OccupancyGrid, hazard_level, occupancy_grid,
                                 risk_grid, severity_grid, severity_level)
from risky_nav.risk_mask import main, write_risk_mask

probability = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
penalty = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False)


def default_with_regions(*regions):
    """The default layout with its risky regions replaced by `regions` (dicts as in the YAML)."""
    raw = yaml.safe_load((LAYOUT_DIR / "default.yaml").read_text())
    raw["risky_regions"] = list(regions)
    return parse_layout(raw, source="default with other regions")


def test_levels_are_the_expected_penalty_per_step_on_the_documented_scale():
    assert HAZARD_FULL_SCALE == 1.0  # docs/ros.md states the scale: change both together
    assert hazard_level(0.007, 8.0) == 6      # default layout's passage: p x C = 0.056
    assert hazard_level(0.1, 1.0) == 10       # two_risks' gravel
    assert hazard_level(0.004, 16.0) == 6     # two_risks' cliff: equal p x C looks alike (documented)
    assert hazard_level(0.5, 1.0) == 50
    assert hazard_level(0.001, 1.0) == 1      # any risk at all is at least level 1
    assert hazard_level(0.0, 50.0) == 0 and hazard_level(0.3, 0.0) == 0
    assert hazard_level(0.5, 10.0) == 100     # clipped


@pytest.mark.parametrize("p,c,what", [(1.5, 1.0, "p must be a probability"), (-0.1, 1.0, "p must be"),
                                      (float("nan"), 1.0, "p must be"), (0.1, -2.0, "penalty must be"),
                                      (0.1, float("inf"), "penalty must be")])
def test_bad_p_or_penalty_is_refused_naming_it(p, c, what):
    with pytest.raises(ValueError, match=what):
        hazard_level(p, c)


@settings(max_examples=200, deadline=None)
@given(p=probability, q=probability, c=penalty, d=penalty)
def test_level_is_monotone_in_p_and_in_penalty_and_within_0_100(p, q, c, d):
    low_p, high_p = sorted((p, q))
    low_c, high_c = sorted((c, d))
    assert hazard_level(low_p, c) <= hazard_level(high_p, c)
    assert hazard_level(p, low_c) <= hazard_level(p, high_c)
    assert 0 <= hazard_level(p, c) <= 100
    assert (hazard_level(p, c) == 0) == (p * c == 0.0)


def test_grid_has_the_costmap_geometry_the_level_inside_and_0_outside():
    layout = load_layout("default")  # passage: x in [4, 8], y in [2.9, 5.1], p 0.007, C 8
    risk, occupancy = risk_grid(layout, 0.05), occupancy_grid(layout, 0.05)
    assert risk.data.dtype == np.int8 and risk.data.shape == occupancy.data.shape
    assert (risk.resolution, risk.origin_x, risk.origin_y) == (occupancy.resolution, occupancy.origin_x,
                                                              occupancy.origin_y)
    assert risk.data[risk.cell_of(6.0, 4.0)] == hazard_level(0.007, 8.0) == 6
    assert risk.data[risk.cell_of(4.02, 2.92)] == 6 and risk.data[risk.cell_of(7.98, 5.08)] == 6  # corners
    for outside in ((3.9, 4.0), (8.1, 4.0), (6.0, 2.8), (6.0, 5.2), (1.5, 4.0), (10.5, 4.0)):
        assert risk.data[risk.cell_of(*outside)] == 0, outside
    assert set(np.unique(risk.data)) == {0, 6}
    assert (risk.data > 0).sum() == 80 * 44  # 4 m x 2.2 m of 5 cm cells


def test_overlapping_regions_take_the_highest_level():
    layout = default_with_regions({"name": "mild", "center": [5.0, 4.0], "size": [2.0, 2.0], "p": 0.1,
                                   "penalty": 1.0},
                                  {"name": "bad", "center": [6.0, 4.0], "size": [2.0, 2.0], "p": 0.2,
                                   "penalty": 2.0})
    risk = risk_grid(layout, 0.05)
    assert risk.data[risk.cell_of(4.5, 4.0)] == 10   # mild only
    assert risk.data[risk.cell_of(5.5, 4.0)] == 40   # both: the max, not the sum (50)
    assert risk.data[risk.cell_of(6.5, 4.0)] == 40   # bad only
    assert risk.data[risk.cell_of(7.5, 4.0)] == 0


def test_severity_levels_are_one_events_penalty_on_the_documented_scale():
    assert SEVERITY_FULL_SCALE == 25.0  # docs/ros.md states the scale: change both together
    assert severity_level(0.004, 16.0) == 64  # two_risks' cliff and gravel: equal hazard levels, different events
    assert severity_level(0.1, 1.0) == 4
    assert severity_level(0.001, 0.1) == 1  # any risk at all is at least level 1
    assert severity_level(0.0, 16.0) == 0 and severity_level(0.3, 0.0) == 0  # no risk, no event
    assert severity_level(0.01, 40.0) == 100  # clipped
    with pytest.raises(ValueError, match="p must be a probability"):
        severity_level(1.5, 1.0)


def test_the_severity_grid_lies_on_the_risk_grid_and_overlaps_take_the_largest_event():
    layout = default_with_regions({"name": "rare", "center": [5.0, 4.0], "size": [2.0, 2.0], "p": 0.01,
                                   "penalty": 20.0},
                                  {"name": "often", "center": [6.0, 4.0], "size": [2.0, 2.0], "p": 0.4,
                                   "penalty": 1.0})
    severity, risk = severity_grid(layout, 0.05), risk_grid(layout, 0.05)
    assert severity.data.dtype == np.int8 and severity.data.shape == risk.data.shape
    assert severity.data[severity.cell_of(4.5, 4.0)] == 80  # rare only
    assert severity.data[severity.cell_of(5.5, 4.0)] == 80  # both: the larger event (the hazard takes often's 40)
    assert risk.data[risk.cell_of(5.5, 4.0)] == 40
    assert severity.data[severity.cell_of(6.5, 4.0)] == 4  # often only
    assert ((severity.data > 0) == (risk.data > 0)).all()


def test_a_layout_without_risky_regions_is_all_zero_and_a_bad_resolution_is_refused():
    assert not risk_grid(default_with_regions(), 0.1).data.any()
    with pytest.raises(ValueError, match="resolution"):
        risk_grid(load_layout("default"), 0.5)


def map_server_raw(meta_path):
    """What Nav2's map_server publishes for a `mode: raw` 8-bit grey image: cell = grey value (0..100,
    above: -1), image row 0 = the top of the map; with the YAML's resolution and origin."""
    meta = yaml.safe_load(meta_path.read_text())
    blob = (meta_path.parent / meta["image"]).read_bytes()
    magic, size, maxval, pixels = blob.split(b"\n", 3)
    width, height = (int(v) for v in size.split())
    assert (magic, maxval, meta["mode"]) == (b"P5", b"255", "raw") and len(pixels) == width * height
    grey = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
    cells = np.where(grey <= 100, grey, -1).astype(np.int8)
    return np.flipud(cells), meta["resolution"], meta["origin"]


def test_the_mask_map_server_would_load_holds_the_hazard_levels_where_they_are(tmp_path):
    layout = load_layout("two_risks")
    grid = risk_grid(layout, 0.05)
    assert main(["--layout", "two_risks", "--out", str(tmp_path / "masks" / "two_risks")]) == 0
    cells, resolution, origin = map_server_raw(tmp_path / "masks" / "two_risks.yaml")
    np.testing.assert_array_equal(cells, grid.data)
    assert resolution == 0.05 and origin == [0.0, 0.0, 0.0]
    assert cells[grid.cell_of(6.0, 5.0)] == 6 and cells[grid.cell_of(6.0, 1.8)] == 10  # cliff, gravel
    assert cells[grid.cell_of(6.0, 8.9)] == 0


def test_a_mask_of_values_outside_0_100_is_refused(tmp_path):
    bad = OccupancyGrid(data=np.full((4, 4), -1, dtype=np.int8), resolution=0.05, origin_x=0.0, origin_y=0.0)
    with pytest.raises(ValueError, match="hazard levels 0..100"):
        write_risk_mask(bad, tmp_path / "bad")
