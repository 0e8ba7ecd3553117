"""The evaluation's two figures: metrics against alpha, and each setting's trajectories over the layout."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from risky_nav.render import draw_layout, draw_trajectory  # noqa: E402

from rs_diffuser_ros.eval.metrics import METRICS, EpisodeOutcome  # noqa: E402

ALPHA_PANELS = ("mean_return", "cvar_return", "violation_rate", "success_rate")
MODE_COLOURS = {"averse": "tab:blue", "seeking": "tab:red"}
BASELINE_COLOURS = ("tab:gray", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")
SETTING_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")


def plot_metrics_vs_alpha(results: dict, path: str | Path) -> Path:
    """One panel per metric: averse and seeking curves over alpha (both through neutral at alpha = 1),
    baselines as horizontal lines with their CI bands; error bars are the 95% intervals."""
    settings = results["settings"]
    guided = [s for s in settings.values() if s["rs_diffuser"]]
    neutral = [(1.0, s) for s in guided if s["alpha"] == 1.0]
    # Each mode's curve runs into the neutral point (alpha = 1 is neutral in both modes).
    curves = {}
    for mode in MODE_COLOURS:
        points = [(s["alpha"], s) for s in guided if s["risk_mode"] == mode and s["alpha"] != 1.0]
        if points:
            curves[mode] = sorted(points + neutral, key=lambda p: p[0])
    if neutral:
        curves["neutral"] = neutral
    baselines = [s for s in settings.values() if not s["rs_diffuser"]]
    alphas = sorted({a for points in curves.values() for a, _ in points} | {1.0})
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 7.0), constrained_layout=True)
    axes = list(axes.flat)
    for ax, key in zip(axes, ALPHA_PANELS):
        heading, kind = METRICS[key]
        scale = 100.0 if kind == "rate" else 1.0
        for mode, points in curves.items():
            if not points:
                continue
            xs = [a for a, _ in points]
            vals = [scale * s["metrics"][key]["value"] for _, s in points]
            err = [[scale * (s["metrics"][key]["value"] - s["metrics"][key]["low"]) for _, s in points],
                   [scale * (s["metrics"][key]["high"] - s["metrics"][key]["value"]) for _, s in points]]
            if mode == "neutral":
                ax.errorbar(xs, vals, yerr=err, marker="s", capsize=3, color="black", linestyle="none", zorder=5,
                            label="neutral (alpha=1)")
            else:
                ax.errorbar(xs, vals, yerr=err, marker="o", capsize=3, color=MODE_COLOURS[mode], label=f"RS-Diffuser {mode}")
        for colour, s in zip(BASELINE_COLOURS, baselines):
            m = s["metrics"][key]
            ax.axhline(scale * m["value"], color=colour, linestyle="--", linewidth=1.2, label=s["label"])
            ax.axhspan(scale * m["low"], scale * m["high"], color=colour, alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        ax.set_xlim(min(alphas) / 1.5, 1.5)
        ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
        ax.minorticks_off()
        ax.set_xlabel("alpha")
        ax.set_title(heading + (" (%)" if kind == "rate" else ""))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.suptitle(f"layout {results['meta']['layout']}: metrics against alpha\n"
                 f"({results['meta']['episodes_per_setting']} episodes per setting, 95% CIs)", fontsize=10)
    return _save(fig, path)


def plot_trajectories(layout, outcomes: dict[str, list[EpisodeOutcome]], labels: dict[str, str], path: str | Path,
                      max_paths: int = 40, overlay: bool = False) -> Path:
    """Paths of the first `max_paths` episodes of each setting: one panel per setting (orange where the
    episode entered a risky region or collided, blue where it did not), or all settings in one panel
    coloured by setting. Catastrophic events are red crosses, collisions black dots (risky_nav.render)."""
    names = list(outcomes)
    panels = 1 if overlay else len(names)
    cols = min(panels, 4)
    rows = (panels + cols - 1) // cols
    panel_w = 4.5 if not overlay else 7.0
    fig, axes = plt.subplots(rows, cols, figsize=(panel_w * cols, panel_w * rows * layout.height / layout.width + 0.6),
                             squeeze=False, constrained_layout=True)
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for i, name in enumerate(names):
        ax = flat[0 if overlay else i]
        if overlay and i == 0 or not overlay:
            draw_layout(ax, layout)
        for j, o in enumerate(outcomes[name][:max_paths]):
            if overlay:
                colour, label = SETTING_COLOURS[i % len(SETTING_COLOURS)], (labels[name] if j == 0 else None)
            else:
                colour, label = ("tab:orange" if o.violation else "tab:blue"), None
            draw_trajectory(ax, o.path, colour, o.event_steps, o.collision_flags, label=label)
        if not overlay:
            violations = sum(o.violation for o in outcomes[name])
            ax.set_title(f"{labels[name]}: {violations}/{len(outcomes[name])} episodes with a violation", fontsize=9)
    if overlay:
        flat[0].plot([], [], "x", color="red", ms=8, mew=2, label="catastrophic event")
        flat[0].legend(loc="lower left", fontsize=8, framealpha=0.9)
        flat[0].set_title(f"layout {layout.name}: first {max_paths} episodes per setting", fontsize=10)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
