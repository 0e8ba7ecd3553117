"""Open-loop look at what the planner proposes and picks, per risk level, from one state.

    python -m rs_diffuser_ros.diagnostics.plot_plans --checkpoint runs/x/model.safetensors \
        --state 1.5 4.0 0.0 --goal 10.5 4.0 --alphas 0.05 0.2 1.0 [--layout default] --out plans.png

Prints a table (chosen plan's end point, expected return, rho_alpha, candidates' spread) and
draws the K candidates (grey) and the chosen plan (colour) for each alpha, on the layout's
occupancy grid when --layout is given (risky_nav's occupancy module: numpy only). A map-conditioned
model plans on that layout's costmap and risk layer, so it needs --layout (a name or a YAML path).
"""
from __future__ import annotations

import argparse

import numpy as np

from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.diagnostics.proposals import enters_risk, layout_planning_map
from rs_diffuser_ros.shipped import resolve_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, required=True, help="a model file or a shipped name")
    ap.add_argument("--state", type=float, nargs=3, metavar=("X", "Y", "YAW"), required=True)
    ap.add_argument("--goal", type=float, nargs=2, metavar=("GX", "GY"), required=True)
    ap.add_argument("--alphas", type=float, nargs="+", default=[0.05, 0.2, 1.0])
    ap.add_argument("--risk-mode", default="averse", choices=["averse", "seeking"])
    ap.add_argument("--candidates", type=int)
    ap.add_argument("--guidance-scale", type=float)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--layout", help="risky_nav layout name, drawn underneath")
    ap.add_argument("--out", default="plans.png")
    args = ap.parse_args(argv)

    overrides = {k: v for k, v in (("candidates", args.candidates), ("guidance_scale", args.guidance_scale)) if v is not None}
    planner = RiskSensitivePlanner.from_checkpoint(args.checkpoint, device=args.device, **overrides)
    layout = None
    if args.layout:
        from risky_nav.layout import load_layout

        layout = load_layout(args.layout)
    planning_map = None
    if planner.map_conditioned:
        if layout is None:
            ap.error(f"{args.checkpoint} is map-conditioned: give --layout, the map it plans on")
        planning_map = layout_planning_map(planner, layout)
    x, y, yaw = args.state
    state = np.array([x, y, np.sin(yaw), np.cos(yaw), 0.0, 0.0], np.float32)
    results = {a: planner.plan(state, args.goal, a, args.risk_mode, seed=args.seed, map_input=planning_map)
               for a in args.alphas}

    print("| alpha | chosen end (x, y) | E[return] | rho_alpha | action (v, w) | candidates' end y: min / mean / max |"
          " candidates entering risk | best rho_alpha: entering / staying out |")
    print("|---:|---|---:|---:|---|---|---:|---|")
    best = lambda values: f"{values.max():.2f}" if values.size else "-"  # noqa: E731
    # per alpha, which candidates enter a risky region (None without a layout)
    entering = {a: None if layout is None else enters_risk(r.candidates, layout) for a, r in results.items()}
    for a, r in results.items():
        ends, into = r.candidates[:, -1, :2], entering[a]
        risk = "-" if into is None else f"{into.sum()} of {len(into)}"
        split = "-" if into is None else f"{best(r.risk_values[into])} / {best(r.risk_values[~into])}"
        print(f"| {a:g} | ({r.plan[-1, 0]:.2f}, {r.plan[-1, 1]:.2f}) | {r.expected_return:.2f} | "
              f"{r.risk_values[r.chosen_index]:.2f} | ({r.action[0]:.2f}, {r.action[1]:.2f}) | "
              f"{ends[:, 1].min():.2f} / {ends[:, 1].mean():.2f} / {ends[:, 1].max():.2f} | {risk} | {split} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 4), squeeze=False)
    grid = None
    if layout is not None:
        from risky_nav.occupancy import occupancy_grid

        grid = occupancy_grid(layout)
    for ax, (a, r) in zip(axes[0], results.items()):
        if grid is not None:
            h, w = grid.data.shape
            ax.imshow(grid.data > 50, origin="lower", cmap="Greys", alpha=0.6,
                      extent=(grid.origin_x, grid.origin_x + w * grid.resolution, grid.origin_y, grid.origin_y + h * grid.resolution))
            for region in layout.risky_regions:
                b = region.box
                ax.add_patch(plt.Rectangle((b.x_min, b.y_min), b.x_max - b.x_min, b.y_max - b.y_min, color="tab:red", alpha=0.2))
        into = entering[a] if entering[a] is not None else np.zeros(len(r.candidates), bool)
        for c, enters in zip(r.candidates, into):  # candidates that enter a risky region in red
            ax.plot(c[:, 0], c[:, 1], color="tab:red" if enters else "0.5", lw=0.6, alpha=0.6)
        ax.plot(r.plan[:, 0], r.plan[:, 1], color="tab:blue", lw=2.2)
        ax.plot(*args.goal, marker="*", color="tab:green", ms=12)
        ax.set_title(f"{args.risk_mode} alpha={a:g}: E={r.expected_return:.1f}, rho={r.risk_values[r.chosen_index]:.1f}")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
