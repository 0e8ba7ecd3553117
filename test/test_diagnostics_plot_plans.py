"""diagnostics/plot_plans.py: a map-conditioned model plans on the layout it is given, and the table says which
candidates enter a risky region."""
from __future__ import annotations

import pytest

from rs_diffuser_ros.diagnostics import plot_plans
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)


def test_the_general_model_plans_on_the_given_layout_and_the_table_counts_entering_candidates(tmp_path, capsys):
    out = tmp_path / "plans.png"
    # 1 m short of the default layout's risky passage (x 4-8), heading into it. With 8 candidates and the general
    # model's 8 route candidates a way, every candidate follows a way: 4 the way round (out), 4 the shortest (in).
    assert plot_plans.main(["--checkpoint", "general", "--state", "3.0", "4.0", "0.0", "--goal", "10.5", "4.0",
                            "--layout", "default", "--alphas", "1.0", "--candidates", "8", "--device", "cpu",
                            "--out", str(out)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 |"))
    entering, of = row.split("|")[7].split(" of ")
    assert int(of) == 8 and int(entering) == 4
    assert out.stat().st_size > 10_000


def test_a_map_model_without_a_layout_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        plot_plans.main(["--checkpoint", "general", "--state", "3.0", "4.0", "0.0", "--goal", "10.5", "4.0"])
    assert "is map-conditioned: give --layout" in capsys.readouterr().err
