"""eval/episode_trace.py: each tick of a closed-loop episode says which candidates enter risk, which kind
scores best and whether the collision check refused the best; the tally counts the ticks the critic lost."""
from __future__ import annotations

import math

import numpy as np
import pytest
from risky_nav import load_layout

from rs_diffuser_ros.control.controller import Command
from rs_diffuser_ros.core.planner import PlanResult
from rs_diffuser_ros.eval import episode_trace
from rs_diffuser_ros.eval.episode_trace import Tick, tally, tick_of
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)


def _plan_result(candidates, scores, chosen, best_scoring):
    k = len(candidates)
    return PlanResult(np.zeros(2), candidates[chosen], candidates, np.zeros(k), np.zeros(4), chosen, 0.0,
                      np.asarray(scores, float), np.zeros((k, 2)), 1.0, None, best_scoring)


def test_a_tick_sorts_the_candidates_by_the_default_layouts_passage_and_sees_the_refused_best():
    layout = load_layout("default")  # the risky passage spans x 4..8, y 2.9..5.1
    line = lambda x0, x1: np.stack([np.linspace(x0, x1, 5), np.full(5, 4.0)], 1)  # noqa: E731  (y = 4.0)
    candidates = np.stack([line(2.0, 3.0), line(2.0, 5.0), line(2.0, 3.5), line(2.0, 6.0)])  # 2nd and 4th enter
    # The best-scoring candidate (index 0) stays out, the collision check refused it, an entering one (3) ran.
    tick = tick_of(Command(0.5, 0.0, plan=_plan_result(candidates, [2.0, 1.0, -1.0, 1.5], 3, 0)), 1.2, layout)
    assert (tick.entering, tick.candidates) == (2, 4)
    assert (tick.best_entering, tick.best_out) == (1.5, 2.0)
    assert tick.both and tick.prefers_out and tick.executed_enters and tick.refused and not tick.inside
    assert tick.xy == (2.0, 4.0) and tick.t == 1.2
    assert tick_of(Command.stopped(None, "no goal"), 0.0, layout) is None  # a stop ran no plan


def _tick(entering, out, executed_enters=False, refused=False, inside=False, k=4):
    n_in = 0 if math.isnan(entering) else (k if math.isnan(out) else 1)
    return Tick(0.0, (0.0, 0.0), inside, k, n_in, entering, out, executed_enters, refused)


def test_the_tally_counts_only_ticks_with_both_kinds_and_the_losses_among_those_the_critic_won():
    nan = float("nan")
    ticks = [_tick(nan, 1.0),  # only staying out: not counted
             _tick(0.5, 1.0),  # both, prefers out, out ran
             _tick(0.5, 1.0, executed_enters=True, refused=True),  # prefers out, the check refused it
             _tick(0.5, 1.0, executed_enters=True),  # prefers out, an entering plan ran anyway (resampled, say)
             _tick(2.0, 1.0, executed_enters=True),  # both, prefers entering
             _tick(2.0, nan, executed_enters=True, inside=True)]
    ticks[-1].t = 3.4
    assert tally(ticks) == {"ticks": 6, "both": 4, "prefers_out": 3, "prefers_out_executed_entering": 2,
                            "refused_best": 1, "first_inside_s": 3.4}


def test_the_trace_follows_the_controller_tick_by_tick_on_the_evaluation_env(capsys):
    ticks, outcome = episode_trace.trace("general", "default", "averse:0.1", episode=0, seed=7000, max_ticks=6)
    assert outcome is None  # cut short
    assert [round(k.t, 3) for k in ticks] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    start = load_layout("default").start_region
    x, y = ticks[0].xy
    assert abs(x - start.center_x) <= start.size_x / 2 and abs(y - start.center_y) <= start.size_y / 2
    assert all(k.candidates == 32 and 0 <= k.entering <= 32 for k in ticks)  # the general model's own K
    assert episode_trace.main(["--checkpoint", "general", "--layout", "default", "--max-ticks", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n| 0.") == 3 and "3 planning ticks" in out


def test_a_setting_without_the_planner_is_refused_by_name():
    with pytest.raises(ValueError, match="'bc' does not run the planner"):
        episode_trace.trace("general", "default", "bc")
