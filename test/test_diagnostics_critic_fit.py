"""critic_fit: a map critic's CVaR_alpha on its training windows against the windows' empirical CVaR_alpha."""
from pathlib import Path

import numpy as np
import pytest

from rs_diffuser_ros.diagnostics import critic_fit

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "datasets" / "riskynav" / "maps40-v0"  # gitignored: present where it was collected


def episode(t: int, risky=()) -> dict:
    flags = np.zeros(t, bool)
    flags[list(risky)] = True
    return {"rewards": np.zeros(t), "in_risky_region": flags}


def test_windows_are_grouped_by_where_they_start_relative_to_the_risk():
    episodes = [
        episode(40, risky=range(20, 25)),  # rows 0..39: crosses at step 20
        episode(12),                       # rows 40..51: keeps out
        episode(30, risky=[3, 4, 10]),     # rows 52..81: crosses at step 3, and again at 10
        episode(6),                        # rows 82..87: keeps out, shorter than the early steps
    ]
    rows = critic_fit.group_rows(episodes)
    assert list(rows) == list(critic_fit.GROUPS)
    np.testing.assert_array_equal(rows["about_to_cross"], list(range(5, 20)) + [52, 53, 54])
    np.testing.assert_array_equal(rows["inside"], [20, 21, 22, 23, 24, 55, 56, 62])
    np.testing.assert_array_equal(rows["keepout_early"], list(range(40, 50)) + list(range(82, 88)))
    np.testing.assert_array_equal(rows["cross_early"], list(range(0, 10)) + list(range(52, 62)))


def test_grouping_with_no_crossing_episode_leaves_the_crossing_groups_empty():
    rows = critic_fit.group_rows([episode(5)], lead=2, early=3)
    assert rows["about_to_cross"].size == rows["inside"].size == rows["cross_early"].size == 0
    np.testing.assert_array_equal(rows["keepout_early"], [0, 1, 2])


def test_grouping_refuses_flags_that_do_not_match_the_rewards():
    with pytest.raises(ValueError, match=r"episode 0: in_risky_region must be \[5\]"):
        critic_fit.group_rows([{"rewards": np.zeros(5), "in_risky_region": np.zeros(6, bool)}])


def test_empirical_cvar_is_the_mean_of_the_lowest_ceil_alpha_n_returns():
    x = np.arange(30, dtype=float)[::-1]  # 29 .. 0
    assert critic_fit.empirical_cvar(x, 0.1) == pytest.approx(1.0)  # lowest 3 (not 4: 0.1 * 30 > 3 in floats)
    assert critic_fit.empirical_cvar(x, 0.2) == pytest.approx(2.5)  # lowest 6
    assert critic_fit.empirical_cvar(x, 1.0) == pytest.approx(14.5)  # the mean
    assert critic_fit.empirical_cvar([5.0, -3.0, 7.0], 0.1) == pytest.approx(-3.0)  # at least one sample
    assert critic_fit.empirical_cvar(np.arange(10.0), 0.25) == pytest.approx(1.0)  # ceil(2.5) = 3: 0, 1, 2


def test_a_per_map_model_is_refused_by_name():
    with pytest.raises(SystemExit, match="default.safetensors is a per-map model"):
        critic_fit.main(["--checkpoint", "default", "--dataset", "x"])


def test_a_dataset_without_tradeoff_maps_is_refused():
    with pytest.raises(SystemExit, match="no trade-off maps"):
        critic_fit.tradeoff_maps(["gen0-rooms-risk_off_route", "gen1-clutter-risk_unavoidable"], 20, "somewhere")
    assert critic_fit.tradeoff_maps(["b-tradeoff", "c", "a-tradeoff"], 1, "d") == ["a-tradeoff"]


def test_the_table_on_two_maps_of_a_small_dataset(capsys):
    if not (TINY / "layouts").is_dir():
        pytest.skip(f"{TINY} (gitignored) is not here")
    pytest.importorskip("h5py")
    assert critic_fit.main(["--checkpoint", "general", "--dataset", str(TINY), "--maps", "2"]) == 0
    out = capsys.readouterr().out
    assert "on 2 trade-off maps" in out
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| group")]
    assert [line.split(" | ")[0][2:] for line in table] == list(critic_fit.GROUPS)


def test_the_per_map_lines_take_the_short_cut_region_and_say_how_the_error_follows_c():
    from types import SimpleNamespace as NS
    region = lambda name, p, c: NS(name=name, p=p, penalty=c)  # noqa: E731
    layouts = {f"m{i}": NS(risky_regions=[region("off_route_0", 0.05, 20.0), region(critic_fit.SHORTCUT_REGION, 0.01, c)])
               for i, c in enumerate((4.0, 8.0, 12.0))}
    assert critic_fit.crossed_region(layouts["m1"]) == (0.01, 8.0)  # the named one, not the larger p x C
    assert critic_fit.crossed_region(NS(risky_regions=[region("a", 0.1, 1.0), region("b", 0.02, 10.0)])) == (0.02, 10.0)
    cell = lambda predicted, redrawn: {"predicted_cvar": predicted, "redrawn_cvar": redrawn}  # noqa: E731
    rows = [{"group": "about_to_cross", "per_map": {"m0": cell(1.0, 0.0), "m1": cell(0.0, -2.0), "m2": cell(-1.0, -4.0)}},
            {"group": "inside", "per_map": {"m0": cell(9.0, 9.0)}}]
    text = critic_fit.per_map_table(rows, layouts)
    assert "| m1 | 0.0100 | 8.0 | 0.00 / -2.00 / +2.00 |" in text
    assert "inside" not in text  # only the crossing groups
    assert "about_to_cross: the error's correlation over 3 maps with C 1.00" in text  # errors 1, 2, 3 rise with C
