"""Pool the episodes of many evaluation runs (one per map) into one table with 95% CIs and the claims.

    python -m rs_diffuser_ros.eval.pooled OUT/gen*/ --out OUT/pooled [--group-by-kind] [--per-map]

Each folder is what `python -m rs_diffuser_ros.eval` (or the suite) wrote there: results.json with every
episode. Pooling treats the maps' episodes as one sample (each map contributes its episodes equally when
the runs had equal --episodes). --group-by-kind adds one pooled table per map kind, read from the map's
file name (`gen<seed>-<style>-<kind>`, risky_nav.generate). --per-map adds one row per map: episodes entering a
risky region / reaching the goal per setting, so a map where the alphas split (or nobody arrives) shows. Writes
OUT/pooled/results.md and results.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from rs_diffuser_ros.eval.claims import check_claims
from rs_diffuser_ros.eval.metrics import EpisodeOutcome, summarize
from rs_diffuser_ros.eval.report import RESULTS_JSON, claims_table, markdown_table
from rs_diffuser_ros.eval.settings import parse_settings

_OUTCOME_FIELDS = set(EpisodeOutcome.__dataclass_fields__) - {"path", "event_steps", "collision_flags"}


def read_run(folder: Path) -> dict:
    path = folder / RESULTS_JSON
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (is {folder} an evaluation's output folder?)")
    return json.loads(path.read_text())


def map_kind(layout: str) -> str:
    """The kind in a generated map's name (gen<seed>-<style>-<kind>), else the layout's own name."""
    parts = Path(layout).stem.split("-")
    return parts[2] if len(parts) == 3 and parts[0].startswith("gen") else Path(layout).stem


def pool(runs: list[dict]) -> dict:
    """{"settings": {name: {"label", "episodes", "maps", "metrics"}}, "claims": [...]} over all runs' episodes."""
    outcomes: dict[str, list[EpisodeOutcome]] = defaultdict(list)
    labels, maps = {}, defaultdict(int)
    for run in runs:
        for name, episodes in run["episodes"].items():
            outcomes[name] += [EpisodeOutcome(**{k: v for k, v in e.items() if k in _OUTCOME_FIELDS}) for e in episodes]
            labels[name] = run["settings"][name]["label"]
            maps[name] += 1
    names = list(outcomes)
    summaries = {name: summarize(outcomes[name]) for name in names}
    settings = {name: {"label": labels[name], "episodes": len(outcomes[name]), "maps": maps[name],
                       "metrics": {k: v.to_dict() for k, v in summaries[name].items()}} for name in names}
    claims = [c.to_dict() for c in check_claims(parse_settings(names), summaries)]
    return {"settings": settings, "claims": claims}


def per_map_counts(run: dict) -> dict[str, dict[str, int]]:
    """{setting: {"episodes", "entered", "arrived", "collided"}} of one map's run."""
    return {name: {"episodes": len(episodes), "entered": sum(bool(e["entered_risky_region"]) for e in episodes),
                   "arrived": sum(bool(e["success"]) for e in episodes),
                   "collided": sum(bool(e["collided"]) for e in episodes)}
            for name, episodes in run["episodes"].items()}


def per_map_table(runs: list[dict]) -> list[str]:
    """One row per map: entered a risky region / reached the goal (of N), collisions where there were any."""
    names = list(dict.fromkeys(name for run in runs for name in run["episodes"]))
    lines = ["## Per map: episodes entering a risky region / reaching the goal", "",
             "| map | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for run in runs:
        counts = per_map_counts(run)
        cells = []
        for name in names:
            c = counts.get(name)
            cells.append("-" if c is None else f"{c['entered']} / {c['arrived']} of {c['episodes']}"
                         + (f", {c['collided']} collided" if c["collided"] else ""))
        lines.append(f"| {Path(run['meta']['layout']).stem} | " + " | ".join(cells) + " |")
    return lines + [""]


def markdown(title: str, pooled: dict) -> list[str]:
    return [f"## {title}", "", markdown_table(pooled, counts=("maps", "episodes")), "",
            *claims_table(pooled["claims"]), ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval.pooled", description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="evaluation output folders (each with results.json)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--group-by-kind", action="store_true", help="also one pooled table per map kind")
    ap.add_argument("--per-map", action="store_true", help="also one row per map: entered risk / reached the goal")
    args = ap.parse_args(argv)
    runs = [read_run(f) for f in args.folders]
    layouts = [r["meta"]["layout"] for r in runs]
    result = {"maps": layouts, "all": pool(runs)}
    lines = [f"# Pooled evaluation over {len(runs)} maps", "",
             "Cells: value [95% CI]; every map's episodes pooled into one sample.", ""]
    lines += markdown(f"All {len(runs)} maps", result["all"])
    if args.group_by_kind:
        kinds = defaultdict(list)
        for run, layout in zip(runs, layouts):
            kinds[map_kind(layout)].append(run)
        for kind, members in sorted(kinds.items()):
            result[kind] = pool(members)
            lines += markdown(f"Map kind `{kind}` ({len(members)} maps)", result[kind])
    if args.per_map:
        result["per_map"] = {Path(layout).stem: per_map_counts(run) for run, layout in zip(runs, layouts)}
        lines += per_map_table(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines))
    (args.out / RESULTS_JSON).write_text(json.dumps(result, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
