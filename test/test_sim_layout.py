"""Layout schema: every shipped layout loads; every malformed field is named in the error."""
import copy

import pytest
import yaml

from risky_nav.layout import LAYOUT_DIR, LayoutError, available_layouts, load_layout, parse_layout


@pytest.fixture()
def raw():
    return yaml.safe_load((LAYOUT_DIR / "default.yaml").read_text())


def test_at_least_three_layouts_ship_and_load():
    names = available_layouts()
    assert "default" in names and len(names) >= 3
    for name in names:
        layout = load_layout(name)
        assert layout.risky_regions, name
        assert layout.is_free(layout.start_region.center_x, layout.start_region.center_y)


def test_default_layout_short_route_crosses_a_risky_region():
    layout = load_layout("default")
    start, goal = layout.start_region, layout.goal_region
    xs = [start.center_x + (goal.center_x - start.center_x) * t / 100 for t in range(101)]
    ys = [start.center_y + (goal.center_y - start.center_y) * t / 100 for t in range(101)]
    assert any(r.box.contains(x, y) for r in layout.risky_regions for x, y in zip(xs, ys))


def _error(raw, source="bad.yaml") -> str:
    with pytest.raises(LayoutError) as err:
        parse_layout(raw, source=source)
    return str(err.value)


def test_missing_field_is_named(raw):
    del raw["robot"]["max_v"]
    message = _error(raw)
    assert "bad.yaml" in message and "robot.max_v" in message and "missing" in message


def test_missing_top_level_field_is_named(raw):
    del raw["goal_region"]
    assert "goal_region" in _error(raw)


def test_wrong_type_is_named(raw):
    raw["time_limit"] = "forty"
    message = _error(raw)
    assert "time_limit" in message and "number" in message


def test_bad_point_is_named(raw):
    raw["obstacles"][1]["center"] = [6.0]
    assert "obstacles[1].center" in _error(raw)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_probability_outside_unit_interval_is_rejected(raw, p):
    raw["risky_regions"][0]["p"] = p
    message = _error(raw)
    assert "risky_regions[0].p" in message and "[0, 1]" in message


def test_negative_penalty_is_rejected(raw):
    raw["risky_regions"][0]["penalty"] = -5
    assert "risky_regions[0].penalty" in _error(raw)


def test_boolean_is_not_a_number(raw):
    raw["reward"]["goal_bonus"] = True
    assert "reward.goal_bonus" in _error(raw)


def test_start_inside_an_obstacle_is_rejected(raw):
    obstacle = raw["obstacles"][0]
    raw["start_region"] = {"center": list(obstacle["center"]), "size": [0.5, 0.5]}
    message = _error(raw)
    assert "start_region" in message and "obstacles[0]" in message


def test_region_beyond_the_map_is_rejected(raw):
    raw["risky_regions"][0]["center"] = [11.5, 4.0]
    assert "risky_regions[0] extends beyond the map" in _error(raw)


def test_negative_size_is_rejected(raw):
    raw["obstacles"][0]["size"] = [4.0, -1.0]
    assert "obstacles[0].size" in _error(raw)


def test_unknown_layout_name_lists_the_shipped_ones():
    with pytest.raises(LayoutError, match="default"):
        load_layout("no_such_layout")


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("map: {width: 12\n")
    with pytest.raises(LayoutError, match="broken.yaml"):
        load_layout(path)


def test_valid_copy_parses_identically(raw):
    assert parse_layout(copy.deepcopy(raw)) == parse_layout(raw)
