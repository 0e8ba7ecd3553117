"""Each map's own CVaR_0.1, averaged over maps, and a setting's difference from alpha 1's on the same maps.

Why: a CVaR_0.1 of the episodes of many maps pooled is the mean of the pooled worst tenth, and on maps of different
sizes that tenth is mostly the longest maps' ordinary episodes: a long way round on one map reads as a tail, whatever
the risk (docs/evaluation.md, "Per-map CVaR_0.1"). The risk/return trade-off the paper claims is a property of one
task's return distribution, so this asks it map by map: the mean over maps of each map's CVaR_0.1, and the paired
difference from alpha 1's (`neutral`) over the maps that ran both. Intervals: a two-level percentile bootstrap,
maps drawn with replacement (the same maps for both settings: paired), then each drawn map's episodes of each
setting redrawn. It is reported beside the pooled value, not in its place (the issue's claim is the pooled one).
"""
from __future__ import annotations

import numpy as np
from risky_nav.stats import cvar, resampled_cvars

from rs_diffuser_ros.eval.claims import NEUTRAL as REFERENCE
from rs_diffuser_ros.eval.metrics import CVAR_LEVEL, N_BOOTSTRAP


def map_cvar(runs: list[dict], alpha: float = CVAR_LEVEL, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> dict[str, dict]:
    """{setting: {"maps", "mean": (value, low, high), "minus_neutral": (value, low, high) or None}} over the maps
    whose runs have both the setting and `neutral` (`neutral` itself: its mean, no difference). Each map's CVaR_alpha
    weighs the same, whatever its episode count."""
    names = list(dict.fromkeys(name for run in runs for name in run["episodes"]))
    rng = np.random.default_rng(seed)
    out = {}
    for name in names:
        both = [run for run in runs if name in run["episodes"] and REFERENCE in run["episodes"]]
        if not both:
            continue
        returns = [[np.array([e["episode_return"] for e in run["episodes"][s]]) for run in both]
                   for s in (name, REFERENCE)]
        point = [np.array([cvar(r, alpha) for r in per_map]) for per_map in returns]
        picks = rng.integers(0, len(both), (n_boot, len(both)))  # the maps of each bootstrap draw, both settings
        boot = [np.stack([resampled_cvars(r, n_boot, rng, alpha) for r in per_map], 1) for per_map in returns]
        drawn = [np.take_along_axis(b, picks, 1).mean(1) for b in boot]  # [n_boot] per setting
        out[name] = {"maps": len(both), "mean": _estimate(point[0].mean(), drawn[0]),
                     "minus_neutral": None if name == REFERENCE else
                     _estimate(point[0].mean() - point[1].mean(), drawn[0] - drawn[1])}
    return out


def _estimate(value: float, draws: np.ndarray) -> tuple[float, float, float]:
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(value), float(low), float(high)


def map_cvar_table(stats: dict[str, dict], alpha: float = CVAR_LEVEL) -> list[str]:
    a = f"CVaR_{alpha:g}"
    lines = [f"### Each map's own {a}, averaged over maps (paired with `{REFERENCE}` on the same maps)", "",
             f"| setting | maps | mean over maps of the map's {a} | minus `{REFERENCE}`'s "
             "| difference's interval above 0 |",
             "|---|---|---|---|---|"]
    cell = lambda e: f"{e[0]:.2f} [{e[1]:.2f}, {e[2]:.2f}]"  # noqa: E731
    for name, s in stats.items():
        diff = s["minus_neutral"]
        lines.append(f"| {name} | {s['maps']} | {cell(s['mean'])} | {'-' if diff is None else cell(diff)} | "
                     f"{'-' if diff is None else ('yes' if diff[1] > 0 else 'no')} |")
    return lines + [""]
