"""Pooling many maps' evaluations: every episode counts once, metrics are recomputed from the pooled
episodes (not averaged per map), kinds are read from generated map names, and a bad folder is named."""
import json

import numpy as np
import pytest

from rs_diffuser_ros.eval.pooled import main, map_kind, per_map_table, pool, shared_seeds, tail_composition, tail_table


def episode(setting, i, ret, success=True, risky=0, collision=0, seed=None):
    return {"setting": setting, "episode": i, "seed": 1000 + i if seed is None else seed, "episode_return": ret, "length": 100,
            "success": success, "collision_steps": collision, "risky_steps": risky, "violation_steps": risky + collision,
            "risk_events": 0, "collided": collision > 0, "entered_risky_region": risky > 0, "violation": risky + collision > 0}


def run(layout, averse, neutral):
    return {"meta": {"layout": layout},
            "settings": {"averse:0.1": {"label": "averse alpha=0.1"}, "neutral": {"label": "neutral (alpha=1)"}},
            "episodes": {"averse:0.1": averse, "neutral": neutral}}


def test_pooling_counts_every_episode_once_and_recomputes_the_metrics():
    a = run("maps/test/gen1000000-rooms-tradeoff.yaml",
            [episode("averse:0.1", i, 5.0) for i in range(4)], [episode("neutral", i, 6.0, risky=3) for i in range(4)])
    b = run("maps/test/gen1000001-outdoor-risk_off_route.yaml",
            [episode("averse:0.1", i, 1.0, success=i < 1) for i in range(2)], [episode("neutral", i, 2.0) for i in range(2)])
    pooled = pool([a, b])
    averse, neutral = pooled["settings"]["averse:0.1"], pooled["settings"]["neutral"]
    assert averse["episodes"] == 6 and averse["maps"] == 2
    # Pooled over episodes (4 x 5.0 + 2 x 1.0) / 6, not the mean of the two maps' means (3.0).
    assert averse["metrics"]["mean_return"]["value"] == pytest.approx(22 / 6)
    assert averse["metrics"]["success_rate"]["value"] == pytest.approx(5 / 6)
    assert neutral["metrics"]["violation_rate"]["value"] == pytest.approx(4 / 6)
    claims = {c["claim"]: c["holds"] for c in pooled["claims"]}
    assert claims["averse alpha=0.1: violation rate at most half of alpha=1's"] is True
    assert claims["success rate >= 90% at every alpha"] is False  # 83 % averse


def test_map_kinds_come_from_generated_names_and_the_command_writes_both_files(tmp_path):
    assert map_kind("maps/test/gen1000007-clutter-risk_unavoidable.yaml") == "risk_unavoidable"
    assert map_kind("default") == "default"
    folders = []
    for k, layout in enumerate(["gen1000000-rooms-tradeoff", "gen1000002-rooms-tradeoff", "gen1000003-clutter-risk_unavoidable"]):
        folder = tmp_path / layout
        folder.mkdir()
        r = run(f"maps/test/{layout}.yaml", [episode("averse:0.1", i, float(k)) for i in range(3)],
                [episode("neutral", i, float(k) + 1) for i in range(3)])
        (folder / "results.json").write_text(json.dumps(r))
        folders.append(str(folder))
    assert main(folders + ["--group-by-kind", "--out", str(tmp_path / "pooled")]) == 0
    result = json.loads((tmp_path / "pooled" / "results.json").read_text())
    assert result["tradeoff"]["settings"]["neutral"]["episodes"] == 6
    assert result["risk_unavoidable"]["settings"]["averse:0.1"]["metrics"]["mean_return"]["value"] == pytest.approx(2.0)
    assert np.isclose(result["all"]["settings"]["averse:0.1"]["metrics"]["mean_return"]["value"], 1.0)
    assert "Map kind `tradeoff` (2 maps)" in (tmp_path / "pooled" / "results.md").read_text()
    with pytest.raises(SystemExit, match="no-such"):
        main([str(tmp_path / "no-such"), "--out", str(tmp_path / "x")])


def test_the_per_map_table_shows_where_the_alphas_split_and_where_nobody_arrives(tmp_path):
    split = run("maps/val/gen0009003-outdoor-tradeoff.yaml", [episode("averse:0.1", i, 5.0) for i in range(3)],
                [episode("neutral", i, 6.0, risky=2) for i in range(3)])
    stuck = run("maps/val/gen0009004-rooms-tradeoff.yaml",
                [episode("averse:0.1", i, -1.0, success=False, collision=int(i == 0)) for i in range(3)],
                [episode("neutral", i, 6.0, risky=1, success=i < 1) for i in range(3)])
    lines = per_map_table([split, stuck])
    assert lines[2] == "| map | averse:0.1 | neutral |"
    assert lines[4] == "| gen0009003-outdoor-tradeoff | 0 / 3 of 3 | 3 / 3 of 3 |"
    assert lines[5] == "| gen0009004-rooms-tradeoff | 0 / 0 of 3, 1 collided | 3 / 1 of 3 |"
    for r, layout in ((split, "gen0009003-outdoor-tradeoff"), (stuck, "gen0009004-rooms-tradeoff")):
        (tmp_path / layout).mkdir()
        (tmp_path / layout / "results.json").write_text(json.dumps(r))
    assert main([str(tmp_path / "gen0009003-outdoor-tradeoff"), str(tmp_path / "gen0009004-rooms-tradeoff"),
                 "--per-map", "--out", str(tmp_path / "pooled")]) == 0
    result = json.loads((tmp_path / "pooled" / "results.json").read_text())
    assert result["per_map"]["gen0009004-rooms-tradeoff"]["neutral"] == {"episodes": 3, "entered": 3, "arrived": 1,
                                                                         "collided": 0}


def test_runs_of_one_map_in_two_folders_pool_as_one_and_a_setting_run_twice_is_refused(tmp_path):
    # The baselines often run in a call after the alphas: their folders hold the same map (here a copy of its file
    # elsewhere), each with its own settings.
    alphas = run("maps/test/gen1000002-rooms-tradeoff.yaml", [episode("averse:0.1", i, 5.0) for i in range(4)],
                 [episode("neutral", i, 6.0, risky=3) for i in range(4)])
    baseline = {"meta": {"layout": "runs/copy/gen1000002-rooms-tradeoff.yaml"},
                "settings": {"unguided": {"label": "unguided diffusion"}},
                "episodes": {"unguided": [episode("unguided", i, -2.0) for i in range(4)]}}
    folders = []
    for name, r in (("alphas", alphas), ("baselines", baseline), ("again", alphas)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(r))
        folders.append(str(tmp_path / name))
    assert main(folders[:2] + ["--out", str(tmp_path / "pooled")]) == 0
    result = json.loads((tmp_path / "pooled" / "results.json").read_text())
    assert result["all"]["settings"]["unguided"]["maps"] == 1 and result["all"]["settings"]["averse:0.1"]["maps"] == 1
    assert len(result["maps"]) == 1
    claims = {c["claim"]: c for c in result["all"]["claims"]}
    assert "unguided" in claims["RS-Diffuser (averse alpha=0.1): CVaR_0.1 of return above every baseline's, its "
                               "interval above theirs"]["detail"]
    with pytest.raises(SystemExit, match="'averse:0.1' of map gen1000002-rooms-tradeoff at env seeds 1000.. "
                                         r"\(4 of them\)"):
        main([folders[0], folders[2], "--out", str(tmp_path / "twice")])


def test_a_second_block_of_env_seeds_of_a_map_adds_its_episodes_and_an_overlapping_one_is_refused(tmp_path):
    first = run("maps/test/gen1000002-rooms-tradeoff.yaml", [episode("averse:0.1", i, 5.0) for i in range(4)],
                [episode("neutral", i, 6.0, risky=3) for i in range(4)])
    second = run("maps/test/gen1000002-rooms-tradeoff.yaml",
                 [episode("averse:0.1", i, 1.0, seed=2000 + i) for i in range(2)],
                 [episode("neutral", i, 2.0, seed=2000 + i) for i in range(2)])
    overlapping = run("maps/test/gen1000002-rooms-tradeoff.yaml",
                      [episode("averse:0.1", i, 1.0, seed=1003 + i) for i in range(2)],
                      [episode("neutral", i, 2.0, seed=2100 + i) for i in range(2)])
    folders = []
    for name, r in (("first", first), ("second", second), ("overlapping", overlapping)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(r))
        folders.append(str(tmp_path / name))
    assert main(folders[:2] + ["--out", str(tmp_path / "pooled")]) == 0
    averse = json.loads((tmp_path / "pooled" / "results.json").read_text())["all"]["settings"]["averse:0.1"]
    assert averse["episodes"] == 6 and averse["maps"] == 1
    assert averse["metrics"]["mean_return"]["value"] == pytest.approx((4 * 5.0 + 2 * 1.0) / 6)
    with pytest.raises(SystemExit, match=r"at env seeds 1003.. \(1 of them\)"):
        main([folders[0], folders[2], "--out", str(tmp_path / "overlap")])


def test_the_tail_says_which_maps_and_which_episodes_a_pooled_cvar_is_made_of():
    # A long map whose every averse episode is a slow, event-free detour, and a short one where neutral's events
    # strike: pooled, averse's worst tenth is all the long map's ordinary episodes, though per map averse's CVaR_0.1
    # is the higher on both.
    def events(setting, returns, struck):
        out = []
        for i, r in enumerate(returns):
            e = episode(setting, i, r, risky=5 if struck[i] else 0)
            e["risk_events"] = int(struck[i])
            out.append(e)
        return out
    long_map = run("maps/test/gen1000009-clutter-tradeoff.yaml",
                   events("averse:0.1", [-4.0 - 0.1 * i for i in range(10)], [False] * 10),
                   events("neutral", [-6.0] + [3.0] * 9, [True] + [False] * 9))
    short_map = run("maps/test/gen1000003-rooms-tradeoff.yaml",
                    events("averse:0.1", [5.0] * 10, [False] * 10),
                    events("neutral", [-3.0, -3.0] + [7.0] * 8, [True, True] + [False] * 8))
    tails = tail_composition([long_map, short_map])
    averse, neutral = tails["averse:0.1"], tails["neutral"]
    assert averse["episodes"] == 2 and averse["by_map"] == {"gen1000009-clutter-tradeoff": 2}  # ceil(0.1 x 20)
    assert averse["with_event"] == 0 and averse["collided"] == 0
    assert averse["maps_above_neutral"] == 2 and averse["maps"] == 2
    assert neutral["by_map"] == {"gen1000009-clutter-tradeoff": 1, "gen1000003-rooms-tradeoff": 1}
    assert neutral["with_event"] == 2 and neutral["maps_above_neutral"] is None
    lines = tail_table(tails)
    assert lines[4] == "| averse:0.1 | 2 | gen1000009-clutter-tradeoff 2 | 0 | 0 | 100 | 2 of 2 |"


def test_maps_that_share_env_seeds_are_named_and_the_table_warns(tmp_path, capsys):
    """Two maps reset with the same seeds draw the same risk events (risky_nav.episode_seeds)."""
    own = [run(f"maps/test/gen100000{k}-rooms-tradeoff.yaml", [episode("averse:0.1", i, 1.0, seed=20 * k + i) for i in range(2)],
               [episode("neutral", i, 1.0, seed=20 * k + i) for i in range(2)]) for k in range(3)]
    assert shared_seeds(own) == []
    reused = own + [run("maps/test/gen1000009-rooms-tradeoff.yaml", [episode("averse:0.1", 0, 1.0, seed=21)],
                        [episode("neutral", 0, 1.0, seed=99)])]
    assert shared_seeds(reused) == ["gen1000001-rooms-tradeoff", "gen1000009-rooms-tradeoff"]
    folders = []
    for r in reused:
        folder = tmp_path / r["meta"]["layout"].split("/")[-1][:-5]
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(r))
        folders.append(str(folder))
    assert main(folders + ["--out", str(tmp_path / "pooled")]) == 0
    assert "2 of 4 maps share env seeds" in (tmp_path / "pooled" / "results.md").read_text()
    assert "share env seeds" in capsys.readouterr().err
