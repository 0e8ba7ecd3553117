"""route_oracle: each map's way picked on one seed set, judged on another, every map weighted as alpha 1's."""
import json

import numpy as np
import pytest
from risky_nav.stats import cvar

from rs_diffuser_ros.eval.route_oracle import choose, judge, main, weighted_cvar


def episode(ret, entered):
    return {"episode_return": ret, "entered_risky_region": entered}


def run(layout, averse, neutral):
    return {"meta": {"layout": f"maps/test/{layout}.yaml"},
            "settings": {"averse:0.1": {"label": "averse"}, "neutral": {"label": "neutral"}},
            "episodes": {"averse:0.1": averse, "neutral": neutral}}


def test_weighted_cvar_is_cvar_when_weights_are_equal_and_counts_a_weight_as_copies():
    values = np.arange(20.0)
    assert weighted_cvar(values, np.ones(20)) == pytest.approx(cvar(values)) == pytest.approx(0.5)
    # Weight 2 on each of 10 values is the same sample as each value twice.
    assert weighted_cvar(np.arange(10.0), np.full(10, 2.0)) == pytest.approx(cvar(np.repeat(np.arange(10.0), 2)))
    assert weighted_cvar([5.0, -1.0, 3.0], [1.0, 0.05, 1.0]) == pytest.approx((0.05 * -1 + 0.155 * 3) / 0.205)


def test_the_way_round_is_picked_only_where_it_was_better_and_driven_often_enough():
    runs = {
        "round_better": run("round_better", [episode(2.0, False)] * 6, [episode(5.0, True)] * 18 + [episode(-8.0, True)] * 2),
        "short_better": run("short_better", [episode(-6.0, False)] * 6, [episode(4.0, True)] * 20),
        "rarely_round": run("rarely_round", [episode(3.0, False)] * 2 + [episode(1.0, True)] * 4,
                            [episode(5.0, True)] * 18 + [episode(-8.0, True)] * 2),
    }
    assert choose(runs, ["averse:0.1"], min_episodes=5) == {"round_better": "round", "short_better": "short",
                                                             "rarely_round": "short"}


def test_the_judged_pool_weights_each_map_as_alpha_ones_episodes():
    # Map a: the way round (2 episodes of 0.0) stands for a's 10 alpha-1 episodes; map b keeps its short cut.
    runs = {"a": run("a", [episode(0.0, False)] * 2 + [episode(9.0, True)], [episode(4.0, True)] * 8 + [episode(-10.0, True)] * 2),
            "b": run("b", [], [episode(6.0, True)] * 9 + [episode(-6.0, True)])}
    result = judge(runs, {"a": "round", "b": "short"}, ["averse:0.1"], n_boot=200)
    # 20 weighted episodes: a's ten at 0.0, b's nine at 6.0 and one at -6.0; the worst two: -6.0 and 0.0.
    assert result["oracle"][0] == pytest.approx(-3.0)
    assert result["neutral"][0] == pytest.approx(-10.0)  # alpha 1's worst two of 20: a's two events
    assert result["maps_round"] == 1 and result["maps"] == 2
    assert result["oracle"][1] <= result["oracle"][0] <= result["oracle"][2]


def test_a_judged_map_never_chosen_on_is_refused(tmp_path):
    folders = {}
    for split, name in (("choose", "gen1"), ("judge", "gen1"), ("judge", "gen2")):
        folder = tmp_path / split / name
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(run(name, [episode(1.0, False)] * 5, [episode(2.0, True)] * 5)))
        folders.setdefault(split, []).append(str(folder))
    with pytest.raises(SystemExit, match="gen2"):
        main(["--choose", *folders["choose"], "--judge", *folders["judge"]])
    assert main(["--choose", *folders["choose"], "--judge", folders["judge"][0]]) == 0


def test_the_short_cut_can_be_another_setting_and_the_judging_read_only_the_first_episodes():
    # A scripted pair (the claim's ceiling): detour as the way round, shortcut as the short cut.
    def scripted(name, detour, shortcut):
        return {"meta": {"layout": f"maps/test/{name}.yaml"}, "settings": {},
                "episodes": {"scripted:detour": detour, "scripted:shortcut": shortcut}}
    chosen = {"a": scripted("a", [episode(1.0, False)] * 10, [episode(5.0, True)] * 9 + [episode(-9.0, True)])}
    picks = choose(chosen, ["scripted:detour"], 5, short_setting="scripted:shortcut")
    assert picks == {"a": "round"}
    # Judged on the first 10: the detour's later -20 and the shortcut's later -30 do not count.
    judged = {"a": scripted("a", [episode(1.0, False)] * 10 + [episode(-20.0, False)] * 10,
                            [episode(5.0, True)] * 9 + [episode(-9.0, True)] + [episode(-30.0, True)] * 10)}
    first = judge(judged, picks, ["scripted:detour"], n_boot=50, short_setting="scripted:shortcut", episodes=10)
    assert first["oracle"][0] == pytest.approx(1.0) and first["neutral"][0] == pytest.approx(-9.0)
    every = judge(judged, picks, ["scripted:detour"], n_boot=50, short_setting="scripted:shortcut")
    assert every["oracle"][0] == pytest.approx(-20.0) and every["neutral"][0] == pytest.approx(-30.0)
    with pytest.raises(SystemExit, match="no 'neutral' episodes"):
        choose(chosen, ["scripted:detour"], 5)
