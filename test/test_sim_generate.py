"""Map generator: every seed gives a valid, connected map; same seed, same YAML; each kind's
risk property holds; scripted policies reach the goal on generated maps; the generate and
multi-map collect commands write what they promise."""
import json
import math

import numpy as np
import pytest
import yaml

from risky_nav.layout import parse_layout
from risky_nav.map_analysis import KINDS, analyse, densify, inside_boxes
from risky_nav.mapgen import STYLES, TEST_SEEDS, TRAIN_SEEDS, generate_map, merge_cells, style_and_kind
from risky_nav.path_planner import GridPathPlanner

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # the C parser when present: 1000 maps to read


def test_a_thousand_seeds_give_valid_connected_maps():
    """Validator + A* reachability (the policies' planner, start centre to goal centre) for seeds 0..999."""
    seen = {(s, k): 0 for s in STYLES for k in KINDS}
    for seed in range(1000):
        m = generate_map(seed)
        layout = parse_layout(yaml.load(m.yaml_text(), Loader=LOADER), source=f"seed {seed}")   # raises if invalid
        start = (layout.start_region.center_x, layout.start_region.center_y)
        goal = (layout.goal_region.center_x, layout.goal_region.center_y)
        assert GridPathPlanner(layout, avoid_risk=False).route(start, goal) is not None, seed
        assert m.kind == m.analysis.kind and m.style in STYLES, seed
        seen[(m.style, m.kind)] += 1
    # every style meets every kind, and the trade-off maps are the most common kind
    assert min(seen.values()) >= 20, seen
    assert sum(v for (s, k), v in seen.items() if k == "tradeoff") > 400, seen


@pytest.mark.parametrize("seed", [0, 7, 123, TEST_SEEDS[0]])
def test_same_seed_same_yaml(seed):
    assert generate_map(seed).yaml_text() == generate_map(seed).yaml_text()


def test_different_seeds_differ_and_splits_are_disjoint():
    texts = {generate_map(s).yaml_text().split("\n", 2)[2] for s in range(20)}
    assert len(texts) == 20
    assert not set(TRAIN_SEEDS) & set(TEST_SEEDS)


def _route_in_risk(layout, route):
    return inside_boxes(densify(route), [r.box for r in layout.risky_regions]).any()


@pytest.mark.parametrize("seed", range(40))
def test_each_kind_has_its_property(seed):
    m = generate_map(seed)
    lay = m.layout
    start = (lay.start_region.center_x, lay.start_region.center_y)
    goal = (lay.goal_region.center_x, lay.goal_region.center_y)
    shortest = GridPathPlanner(lay, avoid_risk=False).route(start, goal)
    risk_free = GridPathPlanner(lay, avoid_risk=True).route(start, goal)
    if m.kind == "tradeoff":
        assert _route_in_risk(lay, shortest)
        assert risk_free is not None and not _route_in_risk(lay, risk_free)
        assert 1.1 <= m.analysis.detour_ratio <= 2.0
        assert m.analysis.risk_free_length - m.analysis.shortest_length >= 1.5
    elif m.kind == "risk_off_route":
        assert lay.risky_regions and not _route_in_risk(lay, shortest)
    else:
        assert _route_in_risk(lay, shortest) and risk_free is None


def test_tradeoff_risk_is_priced_between_the_mean_and_the_tail():
    """p and C by construction: the detour's time cost exceeds the short cut's expected penalty,
    and one event costs more than the detour (the shipped calibration's logic)."""
    checked = 0
    for seed in range(60):
        m = generate_map(seed, kinds=("tradeoff",))
        region = m.layout.risky_regions[0]
        a = m.analysis
        detour_cost = m.layout.reward.step_cost * 10.0 * (a.risk_free_length - a.shortest_length)
        steps_inside = a.risky_length * 10.0
        event_share = 1 - (1 - region.p) ** steps_inside
        assert 0.10 <= event_share <= 0.27, (seed, event_share)
        assert region.penalty >= 1.9 * detour_cost, seed
        assert steps_inside * region.p * region.penalty <= 0.75 * detour_cost, seed
        checked += 1
    assert checked == 60


def test_styles_and_kinds_can_be_restricted_and_bad_names_are_refused():
    for seed in range(10):
        m = generate_map(seed, styles=("clutter",), kinds=("risk_unavoidable",))
        assert (m.style, m.kind) == ("clutter", "risk_unavoidable")
        assert m.layout.name == f"gen{seed:07d}-clutter-risk_unavoidable"
    with pytest.raises(ValueError, match="unknown style"):
        style_and_kind(0, styles=("forest",))
    with pytest.raises(ValueError, match="seed must be"):
        generate_map(-1)


def test_merge_cells_covers_exactly_the_filled_cells():
    rng = np.random.default_rng(0)
    for _ in range(20):
        filled = rng.random((9, 13)) < 0.4
        cover = np.zeros(filled.shape, dtype=int)
        for r0, r1, c0, c1 in merge_cells(filled):
            cover[r0:r1, c0:c1] += 1
        np.testing.assert_array_equal(cover, filled.astype(int))   # covered once, nothing else


def test_scripted_policies_reach_the_goal_on_generated_maps():
    from risky_nav.env import RiskyNavEnv
    from risky_nav.policies import make_policy
    from risky_nav.rollout import run_episode

    for seed in (0, 6, 13, 23):      # rooms/tradeoff, clutter/risk_unavoidable, clutter/tradeoff, outdoor/off-route
        m = generate_map(seed)
        env = RiskyNavEnv(m.layout)
        short = run_episode(env, make_policy("shortcut", m.layout), seed=1)
        detour = run_episode(env, make_policy("detour", m.layout), seed=1)
        env.close()
        assert short.success and detour.success, seed
        if m.kind == "tradeoff":
            assert short.in_risky_region.any() and not detour.in_risky_region.any(), seed


def test_env_accepts_a_generated_layout_file(tmp_path):
    import gymnasium as gym

    import risky_nav

    m = generate_map(3)
    path = tmp_path / f"{m.layout.name}.yaml"
    path.write_text(m.yaml_text())
    env = gym.make(risky_nav.ENV_ID, layout=str(path), disable_env_checker=True)
    obs, _ = env.reset(seed=0)
    assert m.layout.start_region.contains(obs[0], obs[1])
    assert env.unwrapped.layout.obstacles == m.layout.obstacles
    env.close()


def test_generate_command_writes_maps_summary_and_sheet(tmp_path):
    from risky_nav.generate import main

    assert main(["--count", "4", "--seed", "10", "--out", str(tmp_path), "--sheet", "4"]) == 0
    files = sorted(tmp_path.glob("gen*.yaml"))
    assert [f.name for f in files] == sorted(f"{generate_map(s).layout.name}.yaml" for s in range(10, 14))
    rows = (tmp_path / "summary.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("name,seed,attempt,style,kind")
    assert (tmp_path / "contact_sheet.png").stat().st_size > 10_000
    assert "| kind | maps |" in (tmp_path / "summary.md").read_text()
    with pytest.raises(SystemExit, match="test split"):
        main(["--count", "10", "--seed", str(TEST_SEEDS[0] - 5), "--out", str(tmp_path / "x")])


def test_multi_map_collection_records_each_episodes_map(tmp_path):
    from risky_nav.collect import main
    from risky_nav.dataset import dataset_metadata, load_episodes

    out = tmp_path / "riskynav" / "maps-v0"
    assert main(["--generate", "3", "--generate-seed", "20", "--episodes-per-map", "2",
                 "--mix", "shortcut=1,detour=1", "--out", str(out)]) == 0
    episodes = load_episodes(out)
    names = [generate_map(s).layout.name for s in range(20, 23)]
    assert [ep["layout"] for ep in episodes] == [n for n in names for _ in range(2)]
    assert dataset_metadata(out)["layouts"] == names
    assert sorted(p.stem for p in (out / "layouts").glob("*.yaml")) == sorted(names)
    stats = json.loads((out / "dataset_stats.json").read_text())
    assert stats["episodes"] == 6 and stats["maps"] == 3
    assert stats["steps"] == sum(len(ep["rewards"]) for ep in episodes)
    kinds = [generate_map(s).kind for s in range(20, 23)]
    assert {k: v["maps"] for k, v in stats["by_kind"].items()} == {k: kinds.count(k) for k in set(kinds)}
    events = np.mean([ep["risk_events"].any() for ep in episodes])
    assert math.isclose(stats["risk_event_share"], round(float(events), 4))


def test_collect_generates_the_same_maps_in_the_same_order_with_workers():
    from risky_nav.collect import _generate

    seeds = range(40, 46)
    serial = _generate(seeds, workers=1)
    parallel = _generate(seeds, workers=2)
    assert [text for _, text in parallel] == [text for _, text in serial]
    assert [text for _, text in serial] == [generate_map(s).yaml_text() for s in seeds]
