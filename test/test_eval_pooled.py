"""Pooling many maps' evaluations: every episode counts once, metrics are recomputed from the pooled
episodes (not averaged per map), kinds are read from generated map names, and a bad folder is named."""
import json

import numpy as np
import pytest

from rs_diffuser_ros.eval.pooled import main, map_kind, per_map_table, pool


def episode(setting, i, ret, success=True, risky=0, collision=0):
    return {"setting": setting, "episode": i, "seed": 1000 + i, "episode_return": ret, "length": 100,
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
