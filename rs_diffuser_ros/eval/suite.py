"""The whole benchmark: the same settings on several layouts, each with its own model, and one summary
of which claims hold where.

    python -m rs_diffuser_ros.eval.suite --runs default=rs_diffuser_ros/models/default.safetensors \\
        two_risks=runs/two_risks/model.safetensors --episodes 200 --out out/benchmark [eval options]

Writes out/<layout>/ (what `python -m rs_diffuser_ros.eval` writes) and out/summary.md, out/summary.json.
Every option of the evaluation command except --layout, --checkpoint and --out applies to all layouts;
the i-th layout of --runs resets its episodes from --seed + i x --episodes (risky_nav.episode_seeds: layouts
share no risk-event draws, so a table pooled over them counts independent episodes); `bc` uses --bc-checkpoint
for the default layout and LAYOUT=PATH pairs given with --bc-runs elsewhere.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from risky_nav.episode_seeds import first_episode_seed

from rs_diffuser_ros.eval.cli import build_parser, config_from_args, run_and_write
from rs_diffuser_ros.eval.report import RESULTS_JSON, VERDICT
from rs_diffuser_ros.shipped import resolve_model


def parse_pairs(pairs: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for pair in pairs:
        layout, sep, path = pair.partition("=")
        if not sep or not layout or not path:
            raise SystemExit(f"{flag}: {pair!r} must be LAYOUT=PATH, e.g. default=rs_diffuser_ros/models/default.safetensors")
        if layout in out:
            raise SystemExit(f"{flag}: layout {layout!r} given twice")
        out[layout] = Path(path)
    return out


def summary_markdown(per_layout: dict[str, dict]) -> str:
    layouts = list(per_layout)
    claims = [c["claim"] for c in next(iter(per_layout.values()))["claims"]]
    lines = ["# Benchmark summary: which claims hold on which layout", "",
             "| claim | " + " | ".join(f"`{layout}`" for layout in layouts) + " |",
             "|---|" + "---|" * len(layouts)]
    for i, claim in enumerate(claims):
        lines.append(f"| {claim} | " + " | ".join(VERDICT[per_layout[l]["claims"][i]["holds"]] for l in layouts) + " |")
    lines += ["", "Numbers behind each verdict: `<layout>/results.md`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = build_parser(suite=True)
    ap.prog = "python -m rs_diffuser_ros.eval.suite"
    ap.description = __doc__.split("\n\n")[0]
    ap.add_argument("--runs", nargs="+", required=True, metavar="LAYOUT=CHECKPOINT",
                    help="layouts to evaluate, each with its model (a file or a shipped model's name, e.g. general)")
    ap.add_argument("--bc-runs", nargs="*", default=[], metavar="LAYOUT=BC_CHECKPOINT",
                    help="behaviour-cloning policy per layout (default: --bc-checkpoint)")
    ap.add_argument("--only", metavar="LAYOUT", help="evaluate only this layout of --runs, no summary (to run the "
                    "layouts in parallel, e.g. one per GPU: tools/gpu_eval.sh)")
    ap.add_argument("--summarise", action="store_true", help="evaluate nothing: write the summary of the "
                    "<out>/<layout>/results.json files that --only runs left")
    args = ap.parse_args(argv)
    runs = {layout: resolve_model(str(path)) for layout, path in parse_pairs(args.runs, "--runs").items()}
    first_seeds = {layout: first_episode_seed(args.seed, i, args.episodes) for i, layout in enumerate(runs)}
    bc_runs = parse_pairs(args.bc_runs, "--bc-runs")
    if args.only is not None:
        if args.only not in runs:
            ap.error(f"--only {args.only}: not one of the --runs layouts ({', '.join(runs)})")
        runs = {args.only: runs[args.only]}
    if args.summarise:
        per_layout = {layout: _read_results(args.out / Path(layout).stem, ap) for layout in runs}
        return _write_summary(per_layout, args.out)
    configs, default_bc = {}, args.bc_checkpoint
    for layout, checkpoint in runs.items():  # all checked before the first (long) run starts
        args.layout, args.checkpoint, args.seed = layout, checkpoint, first_seeds[layout]
        args.bc_checkpoint = bc_runs.get(layout, default_bc)
        configs[layout] = config_from_args(ap, args)
    per_layout = {}
    for layout, config in configs.items():
        print(f"== layout {layout}: {config.checkpoint}", flush=True)
        per_layout[layout] = run_and_write(config, args.out / Path(layout).stem, max_paths=args.max_paths,
                                           progress=not args.no_progress)
    return 0 if args.only is not None else _write_summary(per_layout, args.out)


def _read_results(folder: Path, ap) -> dict:
    path = folder / RESULTS_JSON
    if not path.is_file():
        ap.error(f"--summarise: {path} is missing (run that layout with --only first)")
    return json.loads(path.read_text())


def _write_summary(per_layout: dict[str, dict], out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_markdown(per_layout)
    (out / "summary.md").write_text(summary)
    (out / "summary.json").write_text(json.dumps(
        {layout: {"claims": r["claims"], "meta": r["meta"]} for layout, r in per_layout.items()}, indent=1))
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
