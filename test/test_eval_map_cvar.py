"""Each map's own CVaR_0.1 averaged over maps, and its paired difference from alpha 1's (eval/map_cvar.py)."""
import json

import pytest
from test_eval_pooled import episode, run

from rs_diffuser_ros.eval.map_cvar import map_cvar
from rs_diffuser_ros.eval.pooled import main


def _constant_run(layout, averse, neutral, n=10):
    return run(layout, [episode("averse:0.1", i, averse) for i in range(n)],
               [episode("neutral", i, neutral) for i in range(n)])


def test_maps_are_drawn_once_for_both_settings_so_the_difference_is_paired():
    # Every episode of a setting on a map has the same return, so only the drawn maps move the numbers.
    runs = [_constant_run("a.yaml", 2.0, 1.0), _constant_run("b.yaml", -1.0, -4.0)]
    stats = map_cvar(runs, n_boot=400)
    assert stats["averse:0.1"]["mean"][0] == pytest.approx(0.5) and stats["neutral"]["mean"][0] == pytest.approx(-1.5)
    value, low, high = stats["averse:0.1"]["minus_neutral"]
    # Paired draws give a difference of 1 (a, a), 2 (a, b) or 3 (b, b); drawn apart it could reach -2 or 6.
    assert (value, low, high) == pytest.approx((2.0, 1.0, 3.0))
    assert stats["averse:0.1"]["mean"][1:] == pytest.approx((-1.0, 2.0))
    assert stats["neutral"]["minus_neutral"] is None


def test_every_map_weighs_the_same_and_a_map_without_neutral_is_left_out():
    long_map = run("a.yaml", [episode("averse:0.1", i, float(i)) for i in range(20)],
                   [episode("neutral", i, 0.0) for i in range(20)])
    short_map = _constant_run("b.yaml", 10.0, 0.0, n=5)
    alone = run("c.yaml", [episode("averse:0.1", i, -50.0) for i in range(5)], [])
    del alone["episodes"]["neutral"]
    stats = map_cvar([long_map, short_map, alone], n_boot=50)
    # a's CVaR_0.1 is the mean of its worst 2 (0 and 1), b's is 10: (0.5 + 10) / 2, not pooled over 25 episodes.
    assert stats["averse:0.1"]["maps"] == 2
    assert stats["averse:0.1"]["mean"][0] == pytest.approx(5.25)


def test_the_pooled_command_adds_the_table_per_kind(tmp_path):
    folders = []
    for k, layout in enumerate(["gen1000000-rooms-tradeoff", "gen1000002-rooms-tradeoff"]):
        folder = tmp_path / layout
        folder.mkdir()
        (folder / "results.json").write_text(json.dumps(_constant_run(f"maps/test/{layout}.yaml", 1.0 + k, 0.0 + k)))
        folders.append(str(folder))
    assert main(folders + ["--group-by-kind", "--map-cvar", "--out", str(tmp_path / "pooled")]) == 0
    result = json.loads((tmp_path / "pooled" / "results.json").read_text())
    assert result["tradeoff"]["map_cvar"]["averse:0.1"]["minus_neutral"] == pytest.approx([1.0, 1.0, 1.0])
    text = (tmp_path / "pooled" / "results.md").read_text()
    assert "| averse:0.1 | 2 | 1.50 [1.00, 2.00] | 1.00 [1.00, 1.00] | yes |" in text
