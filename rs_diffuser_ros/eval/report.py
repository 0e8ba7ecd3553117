"""results.json (everything, per episode too) and results.md (the metric table and the claims) of one run."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import time
from pathlib import Path

from rs_diffuser_ros.control import StopReason
from rs_diffuser_ros.eval.claims import check_claims
from rs_diffuser_ros.eval.metrics import METRICS, Estimate, summarize
from rs_diffuser_ros.eval.runner import EvalRun

# Stops that mean something failed, whose first sentence the report quotes; no_valid_control (every candidate would
# collide: a checked recovery step, or turning to free space) is the collision check doing its job and is only counted.
_EXPLAINED_STOPS = {r.value for r in (StopReason.PLAN_FAILED, StopReason.ODOMETRY, StopReason.NO_COSTMAP,
                                      StopReason.COSTMAP_STALE, StopReason.OUTSIDE_MAP)}

RESULTS_JSON, RESULTS_MD = "results.json", "results.md"


def build_results(run: EvalRun) -> dict:
    cfg = run.config
    summaries = {name: summarize(outcomes) for name, outcomes in run.outcomes.items()}
    planner_settings = [s for s in cfg.settings if s.uses_planner]
    meta = {
        "layout": cfg.layout,
        "episodes_per_setting": cfg.episodes,
        "seed": cfg.seed,
        "env_seeds": f"{cfg.seed} .. {cfg.seed + cfg.episodes - 1} (episode i uses seed + i in every setting)",
        "checkpoint": str(cfg.checkpoint) if planner_settings else None,
        "checkpoint_sha256": _sha256(cfg.checkpoint) if planner_settings else None,
        "planner_yaml": str(cfg.planner_yaml) if cfg.planner_yaml else "shipped config/planner.yaml",
        "controller_overrides": cfg.controller_overrides,
        "device": cfg.device,
        "workers": cfg.workers,
        "envs_per_worker": cfg.batch_envs,
        "env_workers": cfg.env_workers,
        "wall_s": round(run.wall_s, 2),
        "episodes_per_minute": round(run.episodes_per_minute, 2),
        # Start-up (spawning, envs, model load) apart: what a longer run of the same kind would approach.
        "startup_s": None if run.startup_s is None else round(run.startup_s, 2),
        "episodes_per_minute_after_startup": (None if run.episodes_per_minute_after_startup is None
                                              else round(run.episodes_per_minute_after_startup, 2)),
        "env_steps_per_s": round(run.total_steps / max(run.wall_s, 1e-9), 1),
        "time_split_s": {part: round(seconds, 2) for part, seconds in run.timings.items()},
        "git_commit": _git_commit(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    settings = {}
    for s in cfg.settings:
        calls = run.plan_calls.get(s.name, 0)
        settings[s.name] = {
            "label": s.label, "kind": s.kind, "rs_diffuser": s.is_rs_diffuser, "baseline": s.is_baseline,
            **s.describe(),
            "controller": dataclasses.asdict(cfg.controller_settings(s)) if s.uses_planner else None,
            "episodes": len(run.outcomes[s.name]),
            "plan_ms_per_call": round(1e3 * run.plan_seconds.get(s.name, 0.0) / calls, 2) if calls else None,
            "controller_stops": run.stops.get(s.name) or {},
            "controller_stop_examples": run.stop_whys.get(s.name) or {},
            "metrics": {k: v.to_dict() for k, v in summaries[s.name].items()},
        }
    claims = check_claims(cfg.settings, summaries)
    return {
        "meta": meta,
        "metrics": {k: {"heading": heading, "interval": "Wilson" if kind == "rate" else "percentile bootstrap"}
                    for k, (heading, kind) in METRICS.items()},
        "settings": settings,
        "claims": [c.to_dict() for c in claims],
        "episodes": {name: [o.to_dict() for o in outcomes] for name, outcomes in run.outcomes.items()},
    }


def format_estimate(e: dict | Estimate, kind: str) -> str:
    e = e.to_dict() if isinstance(e, Estimate) else e
    if kind == "rate":
        return f"{100 * e['value']:.1f}% [{100 * e['low']:.1f}, {100 * e['high']:.1f}]"
    return f"{e['value']:.2f} [{e['low']:.2f}, {e['high']:.2f}]"


VERDICT = {True: "holds", False: "**fails**", None: "not checked"}  # a claim's verdict in a Markdown cell


def claims_table(claims: list[dict]) -> list[str]:
    """Markdown rows (claim, verdict, numbers) of claims as Claim.to_dict gives them."""
    return ["| claim | verdict | numbers |", "|---|---|---|"] + [
        f"| {c['claim']} | {VERDICT[c['holds']]} | {c['detail']} |" for c in claims]


def markdown_table(results: dict, counts: tuple[str, ...] = ("episodes",)) -> str:
    """One row per setting, one column per metric, 'value [95% CI]' in every cell, after the settings'
    `counts` (episodes; a pooled table also its maps)."""
    headings = ["setting", *counts] + [heading for heading, _ in METRICS.values()]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for name, s in results["settings"].items():
        cells = [f"{s['label']} (`{name}`)", *(str(s[c]) for c in counts)]
        cells += [format_estimate(s["metrics"][key], kind) for key, (_, kind) in METRICS.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(results: dict) -> str:
    m = results["meta"]
    lines = [
        f"# Closed-loop evaluation: layout `{m['layout']}`",
        "",
        f"{m['episodes_per_setting']} episodes per setting, env seeds {m['env_seeds']}."
        + (f" Checkpoint `{m['checkpoint']}` driven by the planner node's controller ({m['planner_yaml']}; "
           f"overrides {m['controller_overrides'] or 'none'}); device {m['device']}." if m["checkpoint"] else ""),
        "Cells: value [95% CI]; rates with Wilson intervals, the rest with a percentile bootstrap over episodes.",
        "",
        markdown_table(results),
        "",
        "## Claims",
        "",
        *claims_table(results["claims"]),
    ]
    stops = {name: s["controller_stops"] for name, s in results["settings"].items() if s.get("controller_stops")}
    if stops:
        lines += ["", "Controller stops (commands, not episodes): " + "; ".join(
            f"`{name}` " + ", ".join(f"{reason} {count}" for reason, count in sorted(counts.items()))
            for name, counts in stops.items())]
        # A failure's own words (an exception, a non-finite action), once per setting and reason: the counts alone
        # left a GPU-only plan failure unexplained (docs/evaluation.md, "At the size").
        lines += [f"First `{reason}` of `{name}`: {why}" for name, s in results["settings"].items()
                  for reason, why in sorted(s.get("controller_stop_examples", {}).items()) if reason in _EXPLAINED_STOPS]
    split = ", ".join(f"{part} {seconds:.1f} s" for part, seconds in m.get("time_split_s", {}).items())
    lines += ["", f"{m['workers']} worker(s) x {m['envs_per_worker']} envs in lockstep ({m.get('env_workers', 0)} env "
                  f"processes each): {m['wall_s']:.0f} s, {m['episodes_per_minute']:.1f} episodes/min, "
                  f"{m['env_steps_per_s']:.0f} env steps/s; time in the workers: {split or 'not recorded'}."
                  + (f" Start-up {m['startup_s']:.1f} s (until every worker stepped), "
                     f"{m['episodes_per_minute_after_startup']:.1f} episodes/min after it."
                     if m.get("startup_s") is not None else ""), ""]
    return "\n".join(lines)


def write_results(results: dict, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / RESULTS_JSON, out / RESULTS_MD
    json_path.write_text(json.dumps(results, indent=1, default=_json_default))
    md_path.write_text(markdown_report(results))
    return json_path, md_path


def _json_default(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _sha256(path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _git_commit() -> str | None:
    """HEAD, with "+modified" when the working tree differs from it (a copy sent to another machine, say)."""
    try:
        here = Path(__file__).parent
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return head + ("+modified" if changed else "")
    except (OSError, subprocess.SubprocessError):
        return None
