"""The evaluation's two figures: metrics against alpha, and each setting's trajectories over the layout."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from rs_diffuser_ros.eval.metrics import METRICS, EpisodeOutcome  # noqa: E402

ALPHA_PANELS = ("mean_return", "cvar_return", "violation_rate", "success_rate")
MODE_COLOURS = {"averse": "tab:blue", "seeking": "tab:red"}
BASELINE_COLOURS = ("tab:gray", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan")
SETTING_COLOURS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:gray")


def plot_metrics_vs_alpha(results: dict, path: str | Path) -> Path:
    """One panel per metric: averse and seeking curves over alpha (both through neutral at alpha = 1),
    baselines as horizontal lines with their CI bands; error bars are the 95% intervals."""
    settings = results["settings"]
    curves = {mode: sorted(((s["alpha"], s) for s in settings.values()
                            if s["kind"] == "planner" and not s["planner_overrides"]
                            and (s["risk_mode"] == mode or s["alpha"] == 1.0)), key=lambda p: p[0])
              for mode in MODE_COLOURS}
    baselines = [s for s in settings.values() if s["kind"] != "planner" or s["planner_overrides"]]
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


def draw_layout(ax, layout) -> None:
    """Walls and obstacles in grey, risky regions in translucent red (labelled with p and C)."""
    for box in layout.solid_boxes():
        ax.add_patch(Rectangle((box.x_min, box.y_min), box.size_x, box.size_y, color="0.35", zorder=1))
    for region in layout.risky_regions:
        b = region.box
        ax.add_patch(Rectangle((b.x_min, b.y_min), b.size_x, b.size_y, color="tab:red", alpha=0.18, zorder=0))
        ax.text(b.center_x, b.center_y, f"{region.name}\np={region.p:g}, C={region.penalty:g}", ha="center",
                va="center", fontsize=7, color="darkred", zorder=3)
    for box, colour in ((layout.start_region, "tab:green"), (layout.goal_region, "gold")):
        ax.add_patch(Rectangle((box.x_min, box.y_min), box.size_x, box.size_y, fill=False, edgecolor=colour,
                               linestyle=":", linewidth=1.5, zorder=2))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(0, layout.height)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_trajectories(layout, outcomes: dict[str, list[EpisodeOutcome]], labels: dict[str, str], path: str | Path,
                      max_paths: int = 40, overlay: bool = False) -> Path:
    """Paths of the first `max_paths` episodes of each setting: one panel per setting (red where the
    episode entered a risky region or collided), or all settings in one panel coloured by setting."""
    names = list(outcomes)
    panels = 1 if overlay else len(names)
    cols = min(panels, 4)
    rows = (panels + cols - 1) // cols
    width = 4.0 * cols * layout.width / max(layout.width, layout.height) + 0.5
    fig, axes = plt.subplots(rows, cols, figsize=(width, 3.2 * rows * layout.height / layout.width + 0.8 * rows),
                             squeeze=False, constrained_layout=True)
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.set_visible(False)
    for i, name in enumerate(names):
        ax = flat[0 if overlay else i]
        if overlay and i == 0 or not overlay:
            draw_layout(ax, layout)
        shown = outcomes[name][:max_paths]
        for j, o in enumerate(shown):
            if overlay:
                colour = SETTING_COLOURS[i % len(SETTING_COLOURS)]
                label = f"{labels[name]}" if j == 0 else None
            else:
                colour, label = ("tab:red" if o.violation else "tab:blue"), None
            ax.plot(o.path[:, 0], o.path[:, 1], color=colour, alpha=0.45, linewidth=1.0, zorder=4, label=label)
        if not overlay:
            violations = sum(o.violation for o in outcomes[name])
            ax.set_title(f"{labels[name]}: {violations}/{len(outcomes[name])} violations", fontsize=9)
    if overlay:
        flat[0].legend(loc="lower center", fontsize=8, ncol=len(names))
        flat[0].set_title(f"layout {layout.name}: first {max_paths} episodes per setting", fontsize=9)
    return _save(fig, path)


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
