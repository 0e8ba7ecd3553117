"""Closed-loop evaluation: a checkpoint, a layout, settings, N episodes -> metric table with 95% CIs and plots.

    python -m rs_diffuser_ros.eval --checkpoint rs_diffuser_ros/models/default.safetensors --layout default \\
        --settings averse:0.05 averse:0.1 neutral seeking:0.1 bc unguided --episodes 200 --seed 0 \\
        --out out/eval_default

Writes results.json, results.md, metrics_vs_alpha.png and trajectories.png to --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rs_diffuser_ros.eval.settings import SETTINGS_HELP, SettingError, parse_settings


def build_parser(suite: bool = False) -> argparse.ArgumentParser:
    from rs_diffuser_ros.eval.runner import DEFAULT_BC_CHECKPOINT, DEFAULT_CHECKPOINT

    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    if not suite:  # the suite gives these per layout
        ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="RS-Diffuser model (default: the shipped one)")
        ap.add_argument("--layout", default="default", help="shipped layout name or path to a layout YAML")
    ap.add_argument("--bc-checkpoint", type=Path, default=DEFAULT_BC_CHECKPOINT, help="behaviour-cloning policy for 'bc'")
    ap.add_argument("--settings", nargs="+", default=["averse:0.05", "averse:0.1", "neutral", "seeking:0.1", "bc", "unguided"],
                    help=SETTINGS_HELP)
    ap.add_argument("--episodes", type=int, default=200, help="episodes per setting")
    ap.add_argument("--seed", type=int, default=0, help="episode i resets the env with seed + i")
    ap.add_argument("--workers", type=int, help="processes (default: the CPU cores on CPU, 1 on a GPU)")
    ap.add_argument("--envs-per-worker", type=int, help="environments stepped in lockstep per worker "
                    "(default: 16 on CPU; on a GPU all of the worker's episodes at once)")
    ap.add_argument("--device", default="cpu", help="torch device of the planner: cpu, cuda, auto")
    ap.add_argument("--candidates", type=int, help="override the checkpoint's planner.candidates (K)")
    ap.add_argument("--ddim-steps", type=int, help="override the checkpoint's planner.ddim_steps")
    ap.add_argument("--guidance-scale", type=float, help="override planner.guidance_scale (not for 'unguided')")
    ap.add_argument("--no-costmap", action="store_true", help="do not give the planner the layout's costmap")
    ap.add_argument("--max-paths", type=int, default=40, help="trajectories drawn per setting")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def config_from_args(ap: argparse.ArgumentParser, args: argparse.Namespace):
    """EvalConfig from parsed arguments; argument errors exit through ap.error with the reason."""
    from rs_diffuser_ros.eval.runner import EvalConfig, default_workers

    try:
        settings = parse_settings(args.settings)
    except SettingError as e:
        ap.error(str(e))
    overrides = {k: v for k, v in (("candidates", args.candidates), ("ddim_steps", args.ddim_steps),
                                   ("guidance_scale", args.guidance_scale)) if v is not None}
    workers = args.workers if args.workers is not None else (default_workers() if args.device == "cpu" else 1)
    config = EvalConfig(settings=settings, layout=args.layout, checkpoint=args.checkpoint, bc_checkpoint=args.bc_checkpoint,
                        episodes=args.episodes, seed=args.seed, workers=workers, envs_per_worker=args.envs_per_worker,
                        device=args.device, planner_overrides=overrides, use_costmap=not args.no_costmap)
    from rs_diffuser_ros.baselines.behaviour_cloning import BehaviourCloningError
    from rs_diffuser_ros.core.checkpoint import CheckpointError

    try:
        config.validate()
    except (ValueError, FileNotFoundError, CheckpointError, BehaviourCloningError) as e:
        ap.error(str(e))
    return config


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    config = config_from_args(ap, args)
    results = run_and_write(config, args.out, max_paths=args.max_paths, progress=not args.no_progress)
    from rs_diffuser_ros.eval.report import markdown_report

    print(markdown_report(results))
    print(f"wrote {args.out}/results.json, results.md, metrics_vs_alpha.png, trajectories.png")
    return 0


def run_and_write(config, out: Path, max_paths: int = 40, progress: bool = True, overlay: bool = False) -> dict:
    """Evaluate, then write the JSON, the Markdown and both figures to `out`; returns the results dict."""
    from risky_nav import load_layout

    from rs_diffuser_ros.eval.plots import plot_metrics_vs_alpha, plot_trajectories
    from rs_diffuser_ros.eval.report import build_results, write_results
    from rs_diffuser_ros.eval.runner import evaluate

    run = evaluate(config, progress=progress)
    results = build_results(run)
    write_results(results, out)
    plot_metrics_vs_alpha(results, Path(out) / "metrics_vs_alpha.png")
    plot_trajectories(load_layout(config.layout), run.outcomes, {s.name: s.label for s in config.settings},
                      Path(out) / "trajectories.png", max_paths=max_paths, overlay=overlay)
    return results


if __name__ == "__main__":
    sys.exit(main())
