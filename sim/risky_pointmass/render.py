"""PNG of Risky PointMass with trajectories drawn on it (matplotlib, no display needed).

    python -m risky_pointmass.render --dataset datasets/riskypointmass/mixed-v0 --episodes 12 \
        --out docs/img/risky_pointmass_dataset.png

The unit square, the risky disc (red), the goal and its 0.05 tolerance (green), the evaluation
start box (dashed); trajectories coloured by behaviour policy, with a red x where a penalty struck
(at the state the step started from: that is where the env draws it).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Circle, Rectangle  # noqa: E402

from risky_pointmass.env import (DISC_CENTER, DISC_RADIUS, EVAL_START, EVAL_START_JITTER, GOAL,  # noqa: E402
                                 GOAL_TOLERANCE)

POLICY_COLORS = {"straight": "tab:orange", "noisy_straight": "gold", "detour": "tab:blue",
                 "noisy_detour": "deepskyblue", "random": "tab:purple"}
RANDOM_SHOWN = 2          # random episodes wander for 100 steps; more than a couple hide the rest


def draw_env(ax, penalty_label: str) -> None:
    ax.add_patch(Circle(DISC_CENTER, DISC_RADIUS, facecolor="tab:red", alpha=0.2, edgecolor="tab:red", hatch="//"))
    ax.text(DISC_CENTER[0], DISC_CENTER[1], penalty_label, ha="center", va="center", fontsize=8, color="darkred",
            bbox=dict(facecolor="white", alpha=0.7, edgecolor="none", pad=1))
    ax.add_patch(Circle(GOAL, GOAL_TOLERANCE, facecolor="tab:green", alpha=0.4, edgecolor="darkgreen"))
    low = np.array(EVAL_START) + EVAL_START_JITTER[0]
    ax.add_patch(Rectangle(low, EVAL_START_JITTER[1] - EVAL_START_JITTER[0], EVAL_START_JITTER[1] - EVAL_START_JITTER[0],
                           facecolor="none", edgecolor="darkgreen", ls="--", lw=1.2))
    ax.text(GOAL[0] + 0.06, GOAL[1] - 0.03, "goal", fontsize=8, color="darkgreen")
    ax.text(EVAL_START[0] - 0.1, EVAL_START[1] + 0.03, "eval start", fontsize=8, color="darkgreen")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def render_png(episodes, out: str | Path, title: str, penalty_label: str = "p = 0.1 / step, C = 50",
               colors: dict[str, str] | None = None) -> Path:
    """episodes: dicts with observations [T+1, 4], risk_events [T] and policy (dataset episode dicts)."""
    colors = colors or POLICY_COLORS
    fig, ax = plt.subplots(figsize=(5.6, 6.0))
    draw_env(ax, penalty_label)
    labelled = set()
    for ep in episodes:
        xy, events, policy = np.asarray(ep["observations"])[:, :2], np.asarray(ep["risk_events"]), ep["policy"]
        color = colors.get(policy, "black")
        ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1.1, alpha=0.8, label=None if policy in labelled else policy)
        ax.plot(xy[0, 0], xy[0, 1], "o", color=color, ms=3)
        if events.any():
            ax.plot(xy[:-1][events, 0], xy[:-1][events, 1], "x", color="red", ms=7, mew=2)
        labelled.add(policy)
    ax.plot([], [], "x", color="red", ms=7, mew=2, label="penalty struck")
    ax.legend(loc="upper left", fontsize=7, framealpha=0.9)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    from risky_nav.dataset import dataset_metadata, load_episodes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset path or Minari id")
    parser.add_argument("--episodes", type=int, default=12,
                        help=f"episodes per behaviour policy, at random (random: at most {RANDOM_SHOWN})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    episodes = load_episodes(args.dataset)
    meta = dataset_metadata(args.dataset)
    rng = np.random.default_rng(args.seed)
    picked = []
    for name in sorted({ep["policy"] for ep in episodes}):
        of_policy = [ep for ep in episodes if ep["policy"] == name]
        shown = min(args.episodes, len(of_policy), RANDOM_SHOWN if name == "random" else args.episodes)
        picked += [of_policy[i] for i in rng.choice(len(of_policy), shown, replace=False)]
    label = f"p = {1 - meta.get('risk_prob', 0.9):.2g} / step, C = {meta.get('risk_penalty', 50.0):g}"
    path = render_png(picked, args.out, f"Risky PointMass: dataset {Path(args.dataset).name}, "
                                        f"{args.episodes} episodes per policy", penalty_label=label)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
