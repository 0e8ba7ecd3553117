"""Top-down PNG of a layout with trajectories drawn on it (matplotlib, no display needed).

    python -m risky_nav.render --layout default --policies shortcut detour --episodes 10 \
        --out docs/img/default_layout.png
    python -m risky_nav.render --layout default --dataset datasets/riskynav/default-v0 \
        --episodes 5 --out runs/default_dataset.png

Walls and obstacles in grey, risky regions shaded red and labelled with p and C, start and
goal regions outlined; each trajectory is coloured by its policy, risk events are marked
with a red x and collisions with a black dot.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from risky_nav.layout import Box, Layout, load_layout  # noqa: E402

POLICY_COLORS = {"shortcut": "tab:orange", "detour": "tab:blue", "noisy_shortcut": "gold",
                 "noisy_detour": "deepskyblue", "random_shortcut": "tab:brown", "random_detour": "tab:purple"}
TRAJECTORY_ALPHA = 0.8    # overlapping trajectories stay readable


def _rect(box: Box, **style) -> Rectangle:
    return Rectangle((box.x_min, box.y_min), box.size_x, box.size_y, **style)


def draw_layout(ax, layout: Layout) -> None:
    """Walls, obstacles, risky regions, start and goal regions on `ax` (metres, equal aspect)."""
    for box in layout.solid_boxes():
        ax.add_patch(_rect(box, facecolor="0.35", edgecolor="none"))
    for region in layout.risky_regions:
        ax.add_patch(_rect(region.box, facecolor="tab:red", alpha=0.25, edgecolor="tab:red", hatch="//"))
        ax.text(region.box.x_min + 0.05, region.box.y_max - 0.05,
                f"{region.name}: p={region.p:g}/step, C={region.penalty:g}", ha="left", va="top",
                fontsize=8, color="darkred", bbox=dict(facecolor="white", alpha=0.7, edgecolor="none", pad=1))
    ax.add_patch(_rect(layout.start_region, facecolor="none", edgecolor="tab:green", lw=1.5, ls="--"))
    ax.add_patch(_rect(layout.goal_region, facecolor="none", edgecolor="tab:green", lw=1.5))
    ax.text(layout.start_region.center_x, layout.start_region.y_max + 0.1, "start", ha="center",
            va="bottom", fontsize=8, color="darkgreen")
    ax.text(layout.goal_region.center_x, layout.goal_region.y_max + 0.1, "goal", ha="center",
            va="bottom", fontsize=8, color="darkgreen")
    ax.set_xlim(0, layout.width)
    ax.set_ylim(0, layout.height)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")


def draw_trajectory(ax, xy: np.ndarray, color: str, risk_events: np.ndarray | None = None,
                    collisions: np.ndarray | None = None, label: str | None = None) -> None:
    """One trajectory: xy [T+1, 2]; events/collisions [T] are marked at the step's end point."""
    ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1.2, alpha=TRAJECTORY_ALPHA, label=label)
    ax.plot(xy[0, 0], xy[0, 1], "o", color=color, ms=3)
    if risk_events is not None and risk_events.any():
        pts = xy[1:][risk_events]
        ax.plot(pts[:, 0], pts[:, 1], "x", color="red", ms=8, mew=2)
    if collisions is not None and collisions.any():
        pts = xy[1:][collisions]
        ax.plot(pts[:, 0], pts[:, 1], ".", color="black", ms=5)


def render_png(layout: Layout, episodes, out: str | Path, title: str | None = None) -> Path:
    """Save a PNG of `layout` with `episodes` (EpisodeRecords or dataset episode dicts) drawn."""
    fig, ax = plt.subplots(figsize=(layout.width * 0.75, layout.height * 0.75 + 0.6))
    draw_layout(ax, layout)
    labelled = set()
    for ep in episodes:
        get = (lambda k: ep[k]) if isinstance(ep, dict) else (lambda k: getattr(ep, k))
        policy = str(get("policy"))
        draw_trajectory(ax, np.asarray(get("observations"))[:, :2], POLICY_COLORS.get(policy, "black"),
                        np.asarray(get("risk_events")), np.asarray(get("collisions")),
                        label=None if policy in labelled else policy)
        labelled.add(policy)
    ax.plot([], [], "x", color="red", ms=8, mew=2, label="catastrophic event")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    ax.set_title(title or f"RiskyNav layout '{layout.name}'")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    from risky_nav.env import RiskyNavEnv
    from risky_nav.policies import make_policy
    from risky_nav.rollout import run_episode

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="default")
    parser.add_argument("--policies", nargs="+", default=["shortcut", "detour"])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per policy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", help="draw episodes of this dataset (path or Minari id) instead "
                                               "of running the policies; --episodes per policy, at random")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    layout = load_layout(args.layout)
    rng = np.random.default_rng(args.seed)
    if args.dataset:
        from risky_nav.dataset import load_episodes

        episodes = load_episodes(args.dataset)
        records = []
        for name in sorted({ep["policy"] for ep in episodes}):
            of_policy = [ep for ep in episodes if ep["policy"] == name]
            picks = rng.choice(len(of_policy), min(args.episodes, len(of_policy)), replace=False)
            records += [of_policy[i] for i in picks]
        title = f"RiskyNav '{layout.name}': dataset {args.dataset}, {args.episodes} episodes per policy"
    else:
        env = RiskyNavEnv(layout)
        records = []
        for name in args.policies:
            policy = make_policy(name, layout, np.random.default_rng(args.seed))
            records += [run_episode(env, policy, seed=args.seed + i) for i in range(args.episodes)]
        env.close()
        title = f"RiskyNav '{layout.name}': {args.episodes} episodes per policy (same starts)"
    path = render_png(layout, records, args.out, title=title)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
