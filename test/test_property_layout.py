"""Property tests of the layout parser: random valid layouts parse to what they describe and
round-trip through a YAML file; a random corruption of one field raises LayoutError naming
that field; arbitrary junk anywhere raises LayoutError and never another exception type."""
import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from risky_nav.layout import Box, LayoutError, load_layout, parse_layout

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
finite = st.floats(allow_nan=False, allow_infinity=False)


def fraction(low, high):
    return st.floats(min_value=low, max_value=high, allow_nan=False)


@st.composite
def valid_layouts(draw):
    """A raw layout (what yaml.safe_load gives) that is valid by construction.

    Start in the left fifth, goal in the right fifth, obstacles in the middle fifth, risky
    regions anywhere inside: regions stay on the map and start/goal stay clear of obstacles.
    """
    w, h = draw(fraction(6.0, 30.0)), draw(fraction(4.0, 20.0))

    def box(fx, fy, max_sx, max_sy):
        return {"center": [draw(fx) * w, draw(fy) * h],
                "size": [draw(fraction(0.1, max_sx)), draw(fraction(0.1, max_sy))]}

    def region(fx_low, fx_high):
        return box(fraction(fx_low, fx_high), fraction(0.3, 0.7), 1.0, 1.0)

    obstacles = [box(fraction(0.45, 0.55), fraction(0.2, 0.8), 0.1 * w, 0.4 * h)
                 for _ in range(draw(st.integers(0, 3)))]
    risky = [{"name": f"r{i}", **box(fraction(0.3, 0.7), fraction(0.3, 0.7), 0.5 * w, 0.5 * h),
              "p": draw(fraction(0.0, 1.0)), "penalty": draw(fraction(0.0, 100.0))}
             for i in range(draw(st.integers(1, 3)))]
    return {
        "name": draw(st.text("abcdefghij_", min_size=1, max_size=12)),
        "description": draw(st.text(max_size=30)),
        "map": {"width": w, "height": h, "wall_thickness": 0.1},
        "robot": {key: draw(fraction(0.05, 0.4) if key == "radius" else fraction(0.01, 10.0))
                  for key in ("radius", "max_v", "max_omega", "max_accel", "max_alpha")},
        "obstacles": obstacles,
        "risky_regions": risky,
        "start_region": region(0.1, 0.2),
        "goal_region": region(0.8, 0.9),
        "goal_tolerance": draw(fraction(0.01, 2.0)),
        "time_limit": draw(fraction(1.0, 600.0)),
        "reward": {key: draw(fraction(0.0, 100.0))
                   for key in ("step_cost", "progress", "goal_bonus", "collision_penalty")},
    }


def box_of(raw) -> Box:
    return Box(*raw["center"], *raw["size"])


@SETTINGS
@given(valid_layouts())
def test_valid_layouts_parse_to_what_they_describe(raw):
    layout = parse_layout(copy.deepcopy(raw), source="gen.yaml")
    assert (layout.width, layout.height, layout.name) == (raw["map"]["width"], raw["map"]["height"], raw["name"])
    assert layout.robot.radius == raw["robot"]["radius"] and layout.robot.max_v == raw["robot"]["max_v"]
    assert layout.obstacles == tuple(box_of(o) for o in raw["obstacles"])
    assert [(r.name, r.box, r.p, r.penalty) for r in layout.risky_regions] == \
        [(r["name"], box_of(r), r["p"], r["penalty"]) for r in raw["risky_regions"]]
    assert layout.start_region == box_of(raw["start_region"]) and layout.goal_region == box_of(raw["goal_region"])
    assert (layout.time_limit, layout.goal_tolerance) == (raw["time_limit"], raw["goal_tolerance"])
    assert layout.reward.goal_bonus == raw["reward"]["goal_bonus"]


@SETTINGS
@given(valid_layouts())
def test_valid_layouts_round_trip_through_a_yaml_file(tmp_path, raw):
    path = tmp_path / "round_trip.yaml"
    path.write_text(yaml.safe_dump(raw))
    loaded = load_layout(path)
    assert loaded == parse_layout(raw, source=str(path))


# Every numeric leaf and what it must be; paths index into the raw layout.
POSITIVE = [("robot", k) for k in ("radius", "max_v", "max_omega", "max_accel", "max_alpha")] + [
    ("map", "width"), ("map", "height"), ("map", "wall_thickness"), ("goal_tolerance",), ("time_limit",)]
NON_NEGATIVE = [("reward", k) for k in ("step_cost", "progress", "goal_bonus", "collision_penalty")] + [
    ("risky_regions", 0, "penalty")]
PAIRS = [("start_region", "center"), ("goal_region", "size"), ("risky_regions", 0, "center"),
         ("risky_regions", 0, "size")]
# The values a hand-edited YAML really produces (.nan, .inf, 1e400 written without a dot reads
# as a huge int, a quoted number, yes/no) are drawn often, besides arbitrary junk.
SPECIAL = [float("nan"), float("inf"), -float("inf"), 10**400, -(10**400), None, True, False, "1.0", [], {}]
NOT_A_NUMBER = st.one_of(st.sampled_from(SPECIAL), st.text(max_size=5), st.lists(finite, max_size=2),
                         st.dictionaries(st.text(max_size=3), finite, max_size=2))
NOT_A_PAIR = st.one_of(st.sampled_from(SPECIAL), finite,
                       st.tuples(finite, st.sampled_from(SPECIAL)).map(list),
                       st.tuples(st.sampled_from(SPECIAL), finite).map(list),
                       st.lists(finite, min_size=3, max_size=4), st.lists(finite, max_size=1))


def dotted(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def corrupt(raw, path, value):
    parent = raw
    for part in path[:-1]:
        parent = parent[part]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return raw


DELETE = object()


@st.composite
def corruptions(draw):
    """(raw layout with one field broken, that field's dotted name)."""
    raw = draw(valid_layouts())
    kind = draw(st.sampled_from(["positive", "non_negative", "probability", "pair"]))
    if kind == "positive":
        path = draw(st.sampled_from(POSITIVE))
        bad = draw(st.one_of(NOT_A_NUMBER, st.floats(max_value=0.0, allow_nan=False), st.just(DELETE)))
    elif kind == "non_negative":
        path = draw(st.sampled_from(NON_NEGATIVE))
        bad = draw(st.one_of(NOT_A_NUMBER, st.floats(max_value=-1e-9, allow_nan=False), st.just(DELETE)))
    elif kind == "probability":
        path = ("risky_regions", 0, "p")
        bad = draw(st.one_of(NOT_A_NUMBER, st.floats(min_value=1.0, exclude_min=True, allow_nan=False),
                             st.floats(max_value=0.0, exclude_max=True, allow_nan=False), st.just(DELETE)))
    else:
        path = draw(st.sampled_from(PAIRS))
        bad = draw(st.one_of(NOT_A_PAIR, st.just(DELETE)))
    if path == ("map", "wall_thickness") and bad is DELETE:
        bad = -1.0  # optional field: a missing one is valid (0.1 m)
    return corrupt(raw, path, bad), dotted(path)


@SETTINGS
@given(corruptions())
def test_a_corrupted_field_is_refused_naming_that_field(case):
    raw, field = case
    with pytest.raises(LayoutError) as error:
        parse_layout(raw, source="gen.yaml")
    message = str(error.value)
    assert message.startswith("gen.yaml: ") and field in message, (field, message)


JUNK = st.recursive(st.sampled_from(SPECIAL) | st.integers() | st.floats() | st.text(max_size=6),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)


@st.composite
def junk_somewhere(draw):
    """A valid layout with any one node (a mapping value or list item, at any depth) replaced by junk."""
    raw = draw(valid_layouts())
    places = []

    def walk(node, path):
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
        for key, child in children:
            places.append(path + (key,))
            walk(child, path + (key,))

    walk(raw, ())
    return corrupt(raw, draw(st.sampled_from(places)), draw(JUNK))


@SETTINGS
@given(junk_somewhere())
def test_junk_anywhere_parses_or_raises_layout_error_only(raw):
    try:
        parse_layout(raw, source="gen.yaml")
    except LayoutError as error:
        assert str(error).startswith("gen.yaml: ")


@settings(max_examples=50, deadline=None)
@given(JUNK)
def test_a_file_that_is_not_a_layout_at_all_raises_layout_error(junk):
    with pytest.raises(LayoutError):
        parse_layout(junk)
