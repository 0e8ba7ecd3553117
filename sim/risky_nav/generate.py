"""Write generated RiskyNav maps: N layout YAMLs, a contact sheet and a difficulty summary.

    python -m risky_nav.generate --count 500 --seed 0 --out maps/train
    python -m risky_nav.generate --split test --out maps/test --check-policies 2
    python -m risky_nav.generate --count 24 --seed 0 --out maps/sheet --sheet-out docs/img/generated_maps.png

Seeds: `--seed S --count N` gives seeds S..S+N-1 (refused if they reach into the held-out test
split, mapgen.TEST_SEEDS); `--split test` gives the test split (its first --count maps if
given); `--seeds` names them one by one. The maps are written as `<out>/<name>.yaml`, the
summary as `<out>/summary.csv` and `<out>/summary.md` (per map: style, kind, shortest and
risk-free route lengths, detour ratio, clearance along the shortest route, risky regions),
and the first --sheet maps drawn with both routes into `<out>/contact_sheet.png`.
`--check-policies K` also drives the scripted short cut and detour K episodes each on every
map (pybullet) and exits 1 naming every map where one of them did not reach the goal.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from risky_nav.map_analysis import KINDS  # noqa: E402
from risky_nav.mapgen import SPLITS, STYLES, TEST_SEEDS, GeneratedMap, generate_map  # noqa: E402
from risky_nav.render import draw_layout  # noqa: E402

SUMMARY_FIELDS = ("name", "seed", "attempt", "style", "kind", "width", "height", "obstacles", "risky_regions",
                  "shortest_m", "risk_free_m", "detour_ratio", "risky_m_on_shortest", "clearance_min_m",
                  "clearance_mean_m", "time_limit_s")


def summary_row(m: GeneratedMap) -> dict:
    a, lay = m.analysis, m.layout
    return {"name": lay.name, "seed": m.seed, "attempt": m.attempt, "style": m.style, "kind": m.kind,
            "width": lay.width, "height": lay.height, "obstacles": len(lay.obstacles),
            "risky_regions": len(lay.risky_regions), "shortest_m": round(a.shortest_length, 2),
            "risk_free_m": round(a.risk_free_length, 2) if math.isfinite(a.risk_free_length) else "none",
            "detour_ratio": round(a.detour_ratio, 3) if math.isfinite(a.detour_ratio) else "inf",
            "risky_m_on_shortest": round(a.risky_length, 2), "clearance_min_m": round(a.clearance_min, 3),
            "clearance_mean_m": round(a.clearance_mean, 3), "time_limit_s": lay.time_limit}


def check_policies(m: GeneratedMap, episodes: int) -> dict[str, float]:
    """Share of `episodes` in which the scripted short cut / detour reach the goal (seeds 0..K-1)."""
    from risky_nav.env import RiskyNavEnv
    from risky_nav.policies import make_policy
    from risky_nav.rollout import run_episode

    env = RiskyNavEnv(m.layout)
    try:
        return {name: float(np.mean([run_episode(env, make_policy(name, m.layout), seed=s).success
                                     for s in range(episodes)]))
                for name in ("shortcut", "detour")}
    finally:
        env.close()


def contact_sheet(maps: list[GeneratedMap], out: Path, columns: int = 6) -> Path:
    """The maps in a grid, each with its shortest route (orange) and risk-free route (blue)."""
    rows = math.ceil(len(maps) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, m in zip(axes.ravel(), maps):
        ax.set_axis_on()
        draw_layout(ax, m.layout)
        for text in ax.texts:        # region labels sized for one big map: shrink them here
            text.set_fontsize(4.5)
        a = m.analysis
        ax.plot(a.shortest[:, 0], a.shortest[:, 1], color="tab:orange", lw=1.2)
        if a.risk_free is not None and a.kind != "risk_off_route":
            ax.plot(a.risk_free[:, 0], a.risk_free[:, 1], color="tab:blue", lw=1.2, ls="--")
        ratio = f", detour x{a.detour_ratio:.2f}" if a.kind == "tradeoff" else ""
        ax.set_title(f"seed {m.seed}: {m.style} / {m.kind}{ratio}", fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=5)
    fig.suptitle("Generated RiskyNav maps (orange: shortest route, blue dashed: risk-free route)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def markdown_summary(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(SUMMARY_FIELDS) + " |", "|" + "---|" * len(SUMMARY_FIELDS)]
    lines += ["| " + " | ".join(str(r[k]) for k in SUMMARY_FIELDS) + " |" for r in rows]
    lines += ["", "| kind | maps | mean detour ratio | mean min clearance (m) |", "|---|---|---|---|"]
    for kind in KINDS:
        of_kind = [r for r in rows if r["kind"] == kind]
        if of_kind:
            ratios = [float(r["detour_ratio"]) for r in of_kind if r["detour_ratio"] != "inf"]
            ratio = f"{np.mean(ratios):.2f}" if ratios else "-"
            lines.append(f"| {kind} | {len(of_kind)} | {ratio} | "
                         f"{np.mean([r['clearance_min_m'] for r in of_kind]):.2f} |")
    return "\n".join(lines) + "\n"


def chosen_seeds(args) -> list[int]:
    if args.seeds:
        return list(args.seeds)
    if args.split:
        seeds = list(SPLITS[args.split])
        return seeds[:args.count] if args.count else seeds
    count = args.count or 24
    seeds = list(range(args.seed, args.seed + count))
    if seeds[0] <= TEST_SEEDS[-1] and seeds[-1] >= TEST_SEEDS[0]:
        raise SystemExit(f"--seed {args.seed} --count {count} reaches into the held-out test split "
                         f"{TEST_SEEDS[0]}..{TEST_SEEDS[-1]}; use --split test for those maps")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for the maps and the summary")
    parser.add_argument("--count", type=int, help="number of maps (default 24; with --split: the first N)")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", help="explicit seeds instead of --seed/--count")
    parser.add_argument("--split", choices=sorted(SPLITS), help="the fixed train or test seed split")
    parser.add_argument("--styles", nargs="+", default=list(STYLES), choices=STYLES)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--sheet", type=int, default=24, help="maps on the contact sheet (0: none)")
    parser.add_argument("--sheet-out", type=Path, help="contact sheet path (default <out>/contact_sheet.png)")
    parser.add_argument("--check-policies", type=int, default=0, metavar="K",
                        help="drive the scripted short cut and detour K episodes each on every map")
    args = parser.parse_args(argv)
    if args.count is not None and args.count < 1:
        raise SystemExit("--count must be >= 1")
    if args.seed < 0 or any(s < 0 for s in args.seeds or []):
        raise SystemExit("seeds must be >= 0")

    seeds = chosen_seeds(args)
    args.out.mkdir(parents=True, exist_ok=True)
    maps, rows, failed = [], [], []
    for seed in tqdm(seeds, desc=f"generating {args.out}", unit="map"):
        m = generate_map(seed, styles=tuple(args.styles), kinds=tuple(args.kinds))
        (args.out / f"{m.layout.name}.yaml").write_text(m.yaml_text())
        row = summary_row(m)
        if args.check_policies:
            success = check_policies(m, args.check_policies)
            row.update({f"{name}_success": rate for name, rate in success.items()})
            if min(success.values()) < 1.0:
                failed.append(f"{m.layout.name} ({success})")
        maps.append(m)
        rows.append(row)

    fields = list(rows[0])
    with open(args.out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    (args.out / "summary.md").write_text(markdown_summary(rows))
    if args.sheet:
        sheet = contact_sheet(maps[:args.sheet], args.sheet_out or args.out / "contact_sheet.png")
        print(f"contact sheet: {sheet}")
    counts = {k: sum(m.kind == k for m in maps) for k in KINDS}
    print(f"wrote {len(maps)} maps to {args.out} (seeds {seeds[0]}..{seeds[-1]}): {counts}; "
          f"{sum(m.attempt for m in maps)} attempts discarded")
    if failed:
        print(f"scripted policies missed the goal on {len(failed)} map(s):\n  " + "\n  ".join(failed))
        return 1
    if args.check_policies:
        print(f"scripted short cut and detour reached the goal in all {args.check_policies} episode(s) on every map")
    return 0


if __name__ == "__main__":
    sys.exit(main())
