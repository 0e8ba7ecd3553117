"""Closed-loop evaluation: a checkpoint, a layout, settings, N episodes -> metric table with 95% CIs and plots.

    python -m rs_diffuser_ros.eval --checkpoint rs_diffuser_ros/models/default.safetensors --layout default \\
        --settings averse:0.05 averse:0.1 neutral seeking:0.1 bc unguided --episodes 200 --seed 0 \\
        --out out/eval_default

Writes results.json, results.md, metrics_vs_alpha.png and trajectories.png to --out.
"""
from __future__ import annotations

import sys

from rs_diffuser_ros.eval.cli import build_parser, config_from_args, run_and_write
from rs_diffuser_ros.eval.report import markdown_report


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    config = config_from_args(ap, args)
    results = run_and_write(config, args.out, max_paths=args.max_paths, progress=not args.no_progress)
    print(markdown_report(results))
    print(f"wrote {args.out}/results.json, results.md, metrics_vs_alpha.png, trajectories.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
