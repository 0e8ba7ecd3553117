"""The README's main command: RS-Diffuser driving the shipped model on a layout, cautious vs risk-neutral.

    python -m rs_diffuser_ros.demo [--episodes 20] [--layout default]      (./run.sh demo)

Runs a short closed-loop evaluation at alpha = 0.05 (risk-averse: optimise the worst 5% of
outcomes) and alpha = 1.0 (risk-neutral: optimise the mean) on the same episodes, prints the
metric table and writes a picture of both settings' trajectories over the layout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rs_diffuser_ros.core.checkpoint import CheckpointError
from rs_diffuser_ros.eval.cli import run_and_write
from rs_diffuser_ros.eval.report import markdown_table
from rs_diffuser_ros.eval.runner import EvalConfig, default_workers
from rs_diffuser_ros.eval.settings import parse_settings
from rs_diffuser_ros.shipped import model_path, resolve_model

DEMO_SETTINGS = ("averse:0.05", "neutral")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=20, help="episodes per setting (default 20)")
    ap.add_argument("--layout", default="default", help="shipped layout name or path to a layout YAML")
    ap.add_argument("--checkpoint", type=resolve_model, default=model_path(),
                    help="model: a file or a shipped model's name (general: the map-conditioned one); default: the default model")
    ap.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    ap.add_argument("--workers", type=int, default=default_workers())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"demo: model {args.checkpoint} not found. The shipped one is rs_diffuser_ros/models/general.safetensors; "
              f"docs/training.md gives the commands that train it.", file=sys.stderr)
        return 2
    config = EvalConfig(settings=parse_settings(list(DEMO_SETTINGS)), layout=args.layout, checkpoint=args.checkpoint,
                        episodes=args.episodes, seed=args.seed, workers=args.workers)
    try:
        config.validate()
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        ap.error(str(e))

    print(f"RS-Diffuser demo: layout '{args.layout}', {args.episodes} episodes each at alpha = 0.05 (risk-averse) "
          f"and alpha = 1.0 (risk-neutral), same starts, goals and random events for both.", flush=True)
    results = run_and_write(config, args.out, max_paths=args.episodes, overlay=True)
    print()
    print(markdown_table(results))
    print()
    averse, neutral = (results["settings"][name]["metrics"] for name in DEMO_SETTINGS)
    print(f"risk-averse (alpha=0.05): {100 * averse['violation_rate']['value']:.0f}% of episodes entered a risky region "
          f"or collided, CVaR_0.1 of return {averse['cvar_return']['value']:.2f}")
    print(f"risk-neutral (alpha=1.0): {100 * neutral['violation_rate']['value']:.0f}% of episodes entered a risky region "
          f"or collided, CVaR_0.1 of return {neutral['cvar_return']['value']:.2f}")
    m = results["meta"]
    print(f"{m['wall_s']:.0f} s, {m['episodes_per_minute']:.0f} episodes/min on {m['workers']} worker(s)")
    print(f"\npicture of both settings' trajectories: {(args.out / 'trajectories.png').resolve()}")
    print(f"full results: {args.out / 'results.md'}, {args.out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
