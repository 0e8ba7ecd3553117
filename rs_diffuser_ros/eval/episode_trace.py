"""Tick by tick through one closed-loop episode: where the robot is, what its candidates do, what the critic
prefers and what the controller executed. Answers "the critic prefers staying out, so why did the robot go in?".

    python -m rs_diffuser_ros.eval.episode_trace --checkpoint general \
        --layout maps/val/gen0009003-outdoor-tradeoff.yaml --setting averse:0.1 [--episode 0] [--seed 7000]

The episode runs as the evaluation runs it: the same setting parser, controller settings (config/planner.yaml and
its overrides), ControllerPolicy and lockstep loop, on the env seed the evaluation gives episode `--episode` (seed +
episode); the planner's noise stream is this run's own. Per tick: the robot's position, whether it stands in a risky
region, how many candidates enter one, the best objective score (what selection maximises: the critic's rho_alpha
minus the costmap term, in normalised units) among the candidates that enter and among those that stay out, whether
the executed plan enters, and whether the collision check refused the best-scoring candidate. The closing tally
counts the ticks offering both kinds, those where the critic prefers staying out, and of those the ticks that
executed an entering plan because the check refused every better one.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from rs_diffuser_ros.diagnostics.proposals import enters_risk

PLANNER_SEED_STREAM = 0  # the planner noise stream of the traced run (the evaluation derives its own per worker)


@dataclass
class Tick:
    t: float  # seconds since the episode started
    xy: tuple[float, float]
    inside: bool  # the robot stands in a risky region
    candidates: int  # K this tick (more when the controller resampled)
    entering: int  # candidates entering a risky region
    best_entering: float  # best objective score among them (NaN: none)
    best_out: float  # ... among the candidates staying out (NaN: none)
    executed_enters: bool
    refused: bool  # the collision check refused the best-scoring candidate (another one ran)

    @property
    def both(self) -> bool:
        return 0 < self.entering < self.candidates

    @property
    def prefers_out(self) -> bool:
        return self.both and self.best_out > self.best_entering


def tick_of(command, t: float, layout) -> Tick | None:
    """A Tick from one controller Command (None when no plan ran: a stop)."""
    r = command.plan
    if r is None:
        return None
    enters = enters_risk(r.candidates, layout)
    scores = np.asarray(r.scores, dtype=float)
    best = lambda mask: float(scores[mask].max()) if mask.any() else float("nan")  # noqa: E731
    inside = bool(enters_risk(r.plan[None, :1], layout)[0])  # the plan's first state is the robot's
    return Tick(t, (float(r.plan[0, 0]), float(r.plan[0, 1])), inside, len(enters), int(enters.sum()),
                best(enters), best(~enters), bool(enters[r.chosen_index]), r.chosen_index != r.best_scoring)


def tally(ticks: list[Tick]) -> dict:
    """How the ticks that offered both kinds of candidate were decided."""
    both = [k for k in ticks if k.both]
    prefer = [k for k in both if k.prefers_out]
    went_in = [k for k in prefer if k.executed_enters]
    first_inside = next((k.t for k in ticks if k.inside), None)
    return {"ticks": len(ticks), "both": len(both), "prefers_out": len(prefer), "prefers_out_executed_entering":
            len(went_in), "refused_best": sum(k.refused for k in went_in), "first_inside_s": first_inside}


def trace(checkpoint, layout_spec, setting_text: str, episode: int = 0, seed: int = 7000, device: str = "cpu",
          planner_yaml=None, max_ticks: int | None = None) -> tuple[list[Tick], object]:
    """Run the episode; (its ticks, its EpisodeOutcome, or None when max_ticks ended it early). checkpoint: a file
    or a shipped model's name."""
    from risky_nav import load_layout
    from risky_nav.env import CONTROL_PERIOD
    from risky_nav.vector import SerialEnvBatch

    from rs_diffuser_ros.core.planner import RiskSensitivePlanner
    from rs_diffuser_ros.eval.lockstep import run_lockstep
    from rs_diffuser_ros.eval.policies import ControllerPolicy, PolicyContext, published_grids
    from rs_diffuser_ros.eval.runner import EvalConfig
    from rs_diffuser_ros.eval.settings import parse_setting
    from rs_diffuser_ros.shipped import resolve_model

    checkpoint = resolve_model(str(checkpoint))
    setting = parse_setting(setting_text)
    if not setting.uses_planner:
        raise ValueError(f"setting {setting_text!r} does not run the planner: there are no candidates to trace")
    config = EvalConfig([setting], layout=str(layout_spec), checkpoint=checkpoint, episodes=episode + 1, seed=seed,
                        device=device, planner_yaml=planner_yaml).validate()
    layout = load_layout(config.layout)
    envs = SerialEnvBatch(1, layout)
    try:
        context = PolicyContext(config, envs, layout, *published_grids(layout), PLANNER_SEED_STREAM,
                                lambda: RiskSensitivePlanner.from_checkpoint(config.checkpoint, device=device), device)
        policy = setting.make_policy(context)
        if not isinstance(policy, ControllerPolicy):
            raise ValueError(f"setting {setting_text!r} is not driven by the controller")
        ticks: list[Tick] = []
        act, steps = policy.act, [0]

        def traced_act(obs, slots):
            if max_ticks is not None and len(ticks) >= max_ticks:
                raise _Enough
            actions = act(obs, slots)
            tick = tick_of(policy.last_commands[0], steps[0] * CONTROL_PERIOD, layout)
            steps[0] += 1
            if tick is not None:
                ticks.append(tick)
            return actions

        policy.act = traced_act
        try:
            outcome = run_lockstep(envs, policy, setting.name, [(episode, seed + episode)])[0]
        except _Enough:
            outcome = None
    finally:
        envs.close()
    return ticks, outcome


class _Enough(Exception):
    """max_ticks reached."""


def _score(value: float) -> str:
    return "-" if np.isnan(value) else f"{value:.2f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval.episode_trace",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="a model file or a shipped name")
    ap.add_argument("--layout", required=True, help="shipped layout name or path to a layout YAML")
    ap.add_argument("--setting", default="averse:0.1", help="a planner setting as the evaluation takes it")
    ap.add_argument("--episode", type=int, default=0, help="the evaluation's episode index (env seed = seed + index)")
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--planner-yaml", help="the controller's settings (default: the shipped config/planner.yaml)")
    ap.add_argument("--max-ticks", type=int, help="stop the episode after this many planning ticks")
    ap.add_argument("--every", type=int, default=1, help="print every N-th tick (the tally counts them all)")
    args = ap.parse_args(argv)
    if args.episode < 0 or args.every < 1 or (args.max_ticks is not None and args.max_ticks < 1):
        ap.error("--episode must be >= 0, --every and --max-ticks >= 1")
    ticks, outcome = trace(args.checkpoint, args.layout, args.setting, args.episode, args.seed, args.device,
                           args.planner_yaml, args.max_ticks)
    print("| t (s) | x | y | in risk | entering / K | best score: entering / staying out | executed enters |"
          " best refused |")
    print("|---:|---:|---:|:-:|---:|---|:-:|:-:|")
    for k in ticks[::args.every]:
        print(f"| {k.t:.1f} | {k.xy[0]:.2f} | {k.xy[1]:.2f} | {'x' if k.inside else ''} | {k.entering} / {k.candidates}"
              f" | {_score(k.best_entering)} / {_score(k.best_out)} | {'x' if k.executed_enters else ''} |"
              f" {'x' if k.refused else ''} |")
    s = tally(ticks)
    first = "never" if s["first_inside_s"] is None else f"{s['first_inside_s']:.1f} s"
    print(f"\n{s['ticks']} planning ticks; {s['both']} offered candidates of both kinds; at {s['prefers_out']} of those "
          f"the best staying out outscored the best entering; at {s['prefers_out_executed_entering']} of those an "
          f"entering plan ran, {s['refused_best']} of them because the collision check refused the best-scoring "
          f"candidate. First in a risky region: {first}.")
    if outcome is not None:
        print(f"Episode: return {outcome.episode_return:.2f}, {outcome.length} steps, success {outcome.success}, "
              f"collision steps {outcome.collision_steps}, steps in risk {outcome.risky_steps}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
