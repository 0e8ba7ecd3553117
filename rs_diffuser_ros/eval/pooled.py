"""Pool the episodes of many evaluation runs (one per map) into one table with 95% CIs and the claims.

    python -m rs_diffuser_ros.eval.pooled OUT/gen*/ [BASELINES/gen*/] --out OUT/pooled [--group-by-kind] [--per-map]
        [--tail]

Each folder is what `python -m rs_diffuser_ros.eval` (or the suite) wrote there: results.json with every
episode. Folders of one map (the same layout name) are merged, each setting taken from the one that ran it, so settings
evaluated in separate calls (the baselines after the alphas) pool as one run; a setting two folders of a map both
ran adds the second's episodes when their env seeds differ (a second block, more episodes a map) and is refused when
any repeats. Pooling treats the maps' episodes as one sample (each map contributes its episodes equally when the runs
had equal --episodes). --group-by-kind adds one pooled table per map kind, read from the map's
file name (`gen<seed>-<style>-<kind>`, risky_nav.generate). --per-map adds one row per map: episodes entering a
risky region / reaching the goal per setting, so a map where the alphas split (or nobody arrives) shows. --tail adds
where each setting's pooled CVaR_0.1 comes from: its worst tenth of episodes by map, with a risk event or not, and on
how many maps its own CVaR_0.1 is above alpha 1's (a pooled tail can be a few long maps' ordinary episodes).
--map-cvar adds each map's own CVaR_0.1 averaged over maps and its paired difference from alpha 1's (map_cvar.py). Maps
that share env seeds share their risk-event draws: the table then says so (risky_nav.episode_seeds). Writes
OUT/pooled/results.md and results.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from risky_nav.stats import cvar

from rs_diffuser_ros.eval.claims import NEUTRAL, check_claims
from rs_diffuser_ros.eval.map_cvar import map_cvar, map_cvar_table
from rs_diffuser_ros.eval.metrics import CVAR_LEVEL, EpisodeOutcome, summarize
from rs_diffuser_ros.eval.report import RESULTS_JSON, claims_table, markdown_table
from rs_diffuser_ros.eval.settings import parse_settings

_OUTCOME_FIELDS = set(EpisodeOutcome.__dataclass_fields__) - {"path", "event_steps", "collision_flags"}


def read_run(folder: Path) -> dict:
    path = folder / RESULTS_JSON
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (is {folder} an evaluation's output folder?)")
    return json.loads(path.read_text())


def merge_by_map(runs: list[dict], folders: list[Path]) -> list[dict]:
    """One run per map (in first-seen order): the settings of every run of that map, each from the run that has
    it. A map is known by its layout's name (the tables name it so; a generated map's name holds its seed), not its
    path: a copy of the map file elsewhere is the same map. A setting two runs of one map both have pools the
    episodes of both if their env seeds differ (more episodes a map) and is an error if any repeats (an episode
    would count twice)."""
    merged: dict[str, dict] = {}
    source: dict[tuple[str, str], Path] = {}
    for run, folder in zip(runs, folders):
        layout = Path(run["meta"]["layout"]).stem
        target = merged.setdefault(layout, {"meta": run["meta"], "settings": {}, "episodes": {}})
        for name, episodes in run["episodes"].items():
            if (layout, name) in source:
                # More episodes of the same setting (another block of env seeds): they join the first run's, as long
                # as no env seed repeats (the same episode would count twice).
                twice = sorted({e["seed"] for e in episodes} & {e["seed"] for e in target["episodes"][name]})
                if twice:
                    raise SystemExit(f"{folder} and {source[layout, name]} both hold setting {name!r} of map {layout} "
                                     f"at env seeds {twice[0]}.. ({len(twice)} of them): pool one of them")
                target["episodes"][name] = target["episodes"][name] + episodes
                continue
            source[layout, name] = folder
            target["episodes"][name] = episodes
            target["settings"][name] = run["settings"][name]
    return list(merged.values())


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


def tail_composition(runs: list[dict], alpha: float = CVAR_LEVEL) -> dict[str, dict]:
    """{setting: {"episodes", "by_map", "with_event", "collided", "mean_length", "maps_above_neutral", "maps"}}: the
    worst ceil(alpha n) of a setting's pooled episodes (those its CVaR_alpha averages; ties in pooling order), the
    maps they come from (most first), how many had a risk event or a collision, their mean length; and on how many
    of the maps that ran both it and `neutral` its own CVaR_alpha is the higher (None for `neutral` itself)."""
    out = {}
    names = list(dict.fromkeys(name for run in runs for name in run["episodes"]))
    for name in names:
        pooled = [(e, Path(run["meta"]["layout"]).stem) for run in runs for e in run["episodes"].get(name, [])]
        returns = np.array([e["episode_return"] for e, _ in pooled], dtype=np.float64)
        k = max(1, int(np.ceil(alpha * len(returns))))
        worst = [pooled[i] for i in np.argsort(returns, kind="stable")[:k]]
        by_map: dict[str, int] = defaultdict(int)
        for _, layout in worst:
            by_map[layout] += 1
        both = [run for run in runs if name in run["episodes"] and NEUTRAL in run["episodes"]]
        above = None if name == NEUTRAL else sum(
            cvar([e["episode_return"] for e in run["episodes"][name]], alpha)
            > cvar([e["episode_return"] for e in run["episodes"][NEUTRAL]], alpha) for run in both)
        out[name] = {"episodes": k, "by_map": dict(sorted(by_map.items(), key=lambda kv: (-kv[1], kv[0]))),
                     "with_event": sum(e["risk_events"] > 0 for e, _ in worst),
                     "collided": sum(e["collision_steps"] > 0 for e, _ in worst),
                     "mean_length": float(np.mean([e["length"] for e, _ in worst])),
                     "maps_above_neutral": above, "maps": len(both)}
    return out


def tail_table(tails: dict[str, dict], alpha: float = CVAR_LEVEL, shown: int = 5) -> list[str]:
    lines = [f"### Where each setting's CVaR_{alpha:g} comes from: its worst episodes", "",
             f"| setting | worst episodes | by map (most first) | with a risk event | collided | mean length (steps) "
             f"| maps where its own CVaR_{alpha:g} is above neutral's |", "|---|---|---|---|---|---|---|"]
    for name, t in tails.items():
        maps = [f"{m} {n}" for m, n in list(t["by_map"].items())[:shown]]
        rest = sum(list(t["by_map"].values())[shown:])
        above = "-" if t["maps_above_neutral"] is None else f"{t['maps_above_neutral']} of {t['maps']}"
        lines.append(f"| {name} | {t['episodes']} | {', '.join(maps)}{f', {rest} from others' if rest else ''} "
                     f"| {t['with_event']} | {t['collided']} | {t['mean_length']:.0f} | {above} |")
    return lines + [""]


def shared_seeds(runs: list[dict]) -> list[str]:
    """The maps whose env seeds another map used too (risky_nav.episode_seeds): their risk events are the same
    draws, so the pooled interval, which counts every episode as independent, would be too narrow."""
    users = defaultdict(set)
    for run in runs:
        for episodes in run["episodes"].values():
            for e in episodes:
                users[e["seed"]].add(Path(run["meta"]["layout"]).stem)
    return sorted({layout for maps in users.values() if len(maps) > 1 for layout in maps})


def markdown(title: str, pooled: dict) -> list[str]:
    return [f"## {title}", "", markdown_table(pooled, counts=("maps", "episodes")), "",
            *claims_table(pooled["claims"]), ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval.pooled", description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="evaluation output folders (each with results.json)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--group-by-kind", action="store_true", help="also one pooled table per map kind")
    ap.add_argument("--per-map", action="store_true", help="also one row per map: entered risk / reached the goal")
    ap.add_argument("--tail", action="store_true",
                    help="also where each setting's pooled CVaR_0.1 comes from (its worst episodes by map)")
    ap.add_argument("--map-cvar", action="store_true",
                    help="also each map's own CVaR_0.1 averaged over maps, paired with alpha 1's (map_cvar.py)")
    args = ap.parse_args(argv)
    runs = merge_by_map([read_run(f) for f in args.folders], args.folders)
    layouts = [r["meta"]["layout"] for r in runs]
    result = {"maps": layouts, "all": pool(runs)}
    lines = [f"# Pooled evaluation over {len(runs)} maps", "",
             "Cells: value [95% CI]; every map's episodes pooled into one sample.", ""]
    sharing = shared_seeds(runs)
    if sharing:
        warning = (f"**Warning:** {len(sharing)} of {len(runs)} maps share env seeds with another map, so they share "
                   "risk-event draws and the intervals below are too narrow; run each map from its own seeds "
                   "(risky_nav.episode_seeds, as tools/gate.sh and the suite do).")
        print(warning, file=sys.stderr)
        lines += [warning, ""]
    lines += markdown(f"All {len(runs)} maps", result["all"])
    if args.tail:
        result["all"]["tail"] = tail_composition(runs)
        lines += tail_table(result["all"]["tail"])
    if args.map_cvar:
        result["all"]["map_cvar"] = map_cvar(runs)
        lines += map_cvar_table(result["all"]["map_cvar"])
    if args.group_by_kind:
        kinds = defaultdict(list)
        for run, layout in zip(runs, layouts):
            kinds[map_kind(layout)].append(run)
        for kind, members in sorted(kinds.items()):
            result[kind] = pool(members)
            lines += markdown(f"Map kind `{kind}` ({len(members)} maps)", result[kind])
            if args.tail:
                result[kind]["tail"] = tail_composition(members)
                lines += tail_table(result[kind]["tail"])
            if args.map_cvar:
                result[kind]["map_cvar"] = map_cvar(members)
                lines += map_cvar_table(result[kind]["map_cvar"])
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
