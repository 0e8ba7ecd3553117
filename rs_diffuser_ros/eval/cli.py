"""The evaluation's command line, shared by `python -m rs_diffuser_ros.eval`, the suite and the demo:
the parser (controller options derived from the settings' specs), EvalConfig from it, and one run
written to a folder (results.json, results.md, metrics_vs_alpha.png, trajectories.png).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from risky_nav import load_layout

from rs_diffuser_ros.baselines.behaviour_cloning import BehaviourCloningError
from rs_diffuser_ros.baselines.codac import CODACError
from rs_diffuser_ros.baselines.oraac import ORAACError
from rs_diffuser_ros.control import ControllerSettings
from rs_diffuser_ros.core.checkpoint import CheckpointError
from rs_diffuser_ros.core.setting_spec import add_arguments, given_arguments
from rs_diffuser_ros.eval.plots import plot_metrics_vs_alpha, plot_trajectories
from rs_diffuser_ros.eval.report import build_results, write_results
from rs_diffuser_ros.eval.runner import EvalConfig, default_workers, evaluate
from rs_diffuser_ros.eval.settings import LEARNED, SETTINGS_HELP, SettingError, parse_settings
from rs_diffuser_ros.shipped import model_path, resolve_model

DESCRIPTION = """Closed-loop evaluation: a checkpoint, a layout, settings, N episodes -> metric table with 95% CIs and plots.

    python -m rs_diffuser_ros.eval --layout default --settings averse:0.05 averse:0.1 neutral seeking:0.1 bc unguided \\
        --episodes 200 --seed 0 --out out/eval_default

Writes results.json, results.md, metrics_vs_alpha.png and trajectories.png to --out. RS-Diffuser settings run
through the planner node's own controller with config/planner.yaml's settings; the options below override them.
"""

# The controller settings a whole run may override: alpha and risk_mode come with each setting, and
# the noise seed of every step is drawn from the run's own reproducible streams (--seed).
RUN_OVERRIDABLE = [name for name in ControllerSettings.__dataclass_fields__ if name not in ("alpha", "risk_mode", "seed")]


def build_parser(suite: bool = False) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval", description=DESCRIPTION.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=DESCRIPTION.split("\n\n", 1)[1])
    if not suite:  # the suite gives these per layout
        ap.add_argument("--checkpoint", type=resolve_model, default=model_path(),
                        help="RS-Diffuser model: a file, or a shipped model's name (general, two_risks, ...); default: the default model")
        ap.add_argument("--layout", default="default", help="shipped layout name or path to a layout YAML")
    defaults = EvalConfig(settings=[]).learned_checkpoints
    for head, (kind, label, _) in LEARNED.items():
        ap.add_argument(f"--{head}-checkpoint", type=Path, default=defaults.get(kind), help=f"{label} policy for '{head}'")
    ap.add_argument("--settings", nargs="+", default=["averse:0.05", "averse:0.1", "neutral", "seeking:0.1", "bc", "unguided"],
                    help=SETTINGS_HELP)
    ap.add_argument("--episodes", type=int, default=200, help="episodes per setting")
    ap.add_argument("--seed", type=int, default=0, help="episode i resets the env with seed + i")
    ap.add_argument("--workers", type=int, help="processes (default: the CPU cores on CPU, 1 on a GPU)")
    ap.add_argument("--envs-per-worker", type=int, help="environments stepped in lockstep per worker "
                    "(default: 16 on CPU; on a GPU all of the worker's episodes at once)")
    ap.add_argument("--env-workers", type=int, default=0, help="processes stepping each worker's environments "
                    "(default 0: in the worker; on a GPU machine: its cores)")
    ap.add_argument("--device", default="cpu", help="torch device of the planner: cpu, cuda, auto")
    ap.add_argument("--planner-yaml", type=Path, help="the controller's settings (default: the shipped config/planner.yaml)")
    ap.add_argument("--max-paths", type=int, default=40, help="trajectories drawn per setting")
    ap.add_argument("--out", type=Path, required=True, help="output folder")
    ap.add_argument("--no-progress", action="store_true")
    group = ap.add_argument_group("controller settings for every planner setting (override --planner-yaml)")
    add_arguments(group, ControllerSettings, RUN_OVERRIDABLE)
    return ap


def config_from_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> EvalConfig:
    """EvalConfig from parsed arguments; argument errors exit through ap.error with the reason."""
    try:
        settings = parse_settings(args.settings)
    except SettingError as e:
        ap.error(str(e))
    workers = args.workers if args.workers is not None else (default_workers() if args.device == "cpu" else 1)
    learned = {kind: getattr(args, f"{head}_checkpoint") for head, (kind, _, _) in LEARNED.items()}
    config = EvalConfig(settings=settings, layout=args.layout, checkpoint=args.checkpoint, learned_checkpoints=learned,
                        episodes=args.episodes, seed=args.seed, workers=workers, envs_per_worker=args.envs_per_worker,
                        env_workers=args.env_workers,
                        device=args.device, planner_yaml=args.planner_yaml,
                        controller_overrides=given_arguments(args, ControllerSettings, RUN_OVERRIDABLE))
    try:
        config.validate()
    except (ValueError, FileNotFoundError, CheckpointError, BehaviourCloningError, CODACError, ORAACError) as e:
        ap.error(str(e))
    return config


def run_and_write(config, out: Path, max_paths: int = 40, progress: bool = True, overlay: bool = False) -> dict:
    """Evaluate, then write the JSON, the Markdown and both figures to `out`; returns the results dict."""
    run = evaluate(config, progress=progress)
    results = build_results(run)
    write_results(results, out)
    plot_metrics_vs_alpha(results, Path(out) / "metrics_vs_alpha.png")
    plot_trajectories(load_layout(config.layout), run.outcomes, {s.name: s.label for s in config.settings},
                      Path(out) / "trajectories.png", max_paths=max_paths, overlay=overlay)
    return results


