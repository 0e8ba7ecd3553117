"""Does a map critic fit the return's tail on its own training data? Its CVaR_alpha against the empirical CVaR_alpha.

    python -m rs_diffuser_ros.diagnostics.critic_fit --checkpoint runs/route7x50/model.safetensors \
        --dataset datasets/riskynav/maps200x50clean-v0 [--maps 20] [--alpha 0.1] [--per-map]

A critic that predicts the tail of the return too light on the very windows it was trained on cannot trade
risk: the short cut through a risky region looks nearly as good as the way round at any alpha. This check took
that apart from everything downstream of the critic (guidance, selection, the controller), and
docs/method_choices.md ("What brought the trade-off on the default layout") used it to find the return scale
that had pushed the risk events into the quantile-Huber loss's quadratic zone.

The dataset is one collected over generated maps (python -m risky_nav.collect --generate ..., layouts/ beside
data/). Every window of the first --maps trade-off maps (name contains "tradeoff") is built as training builds
it (WindowDataset, TrainingMaps) and grouped by where it starts relative to the risk (group_rows). Per group and
map, the critic's CVaR_alpha at noise level 0 (clean windows, as selection reads them; return units) is averaged
and set against the empirical CVaR_alpha of the same windows' Monte-Carlo returns; then the means. The table is
the average over the maps with at least MIN_WINDOWS windows in the group.

The recorded returns hold one draw of each crossing's rare events (40 episodes of a map: a handful of events),
so the empirical CVaR of a group swings by several return units with which crossings happened to meet one. Two
more columns take that draw away (core/training/risk_relabel.py re-draws each recorded path's events
REDRAWS times from its regions' p and C): the same pooled CVaR over the re-drawn returns, and the mean over the
group's windows of each window's own CVaR (its path's future known, only its events random). A critic reads
only the window, not the rest of the path, so it cannot reach the last column where the future route is
uncertain; it should reach the pooled one.

--per-map adds one line per map for the crossing groups (the predicted and re-drawn CVaR and the error) with the p
and C of the region the map's short cut crosses, and the error's correlation with C and with p x C over the maps: does
the critic's error follow the event size, which the risk layer (p x C) does not carry?
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
import torch

from risky_nav.mapgen import SHORTCUT_REGION

from rs_diffuser_ros.core.checkpoint import CheckpointError
from rs_diffuser_ros.core.conditioning import MapView, model_context
from rs_diffuser_ros.core.config import CoreConfig
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.core.plan_frame import to_plan_frame
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.risk import check_alpha, tail_weights
from rs_diffuser_ros.core.training.map_batches import TrainingMaps
from rs_diffuser_ros.core.training.risk_relabel import RiskEventRelabel
from rs_diffuser_ros.core.training.train import (load_dataset_episodes, load_dataset_layouts, load_dataset_maps,
                                                 load_dataset_risk_exposure)
from rs_diffuser_ros.core.training.windows import WindowDataset
from rs_diffuser_ros.shipped import resolve_model

GROUPS = ("about_to_cross", "inside", "keepout_early", "cross_early")
COLUMNS = ("predicted_cvar", "empirical_cvar", "redrawn_cvar", "path_cvar", "predicted_mean", "empirical_mean")
LEAD_STEPS = 15  # about_to_cross: the window starts within this many steps (1.5 s) before the first risky step
EARLY_STEPS = 10  # keepout_early / cross_early: the first steps (1 s) of an episode
MIN_WINDOWS = 20  # a map with fewer windows in a group is left out of that group's averages
BATCH = 2048
REDRAWS = 100  # re-drawn event sets per window (the re-drawn columns): 10 in the lowest 10 % of each window


def group_rows(episodes, lead: int = LEAD_STEPS, early: int = EARLY_STEPS) -> dict[str, np.ndarray]:
    """Window rows of each group (GROUPS): row t of an episode is its window starting at observation t, rows
    numbered over the episodes in order as WindowDataset numbers them (one per reward).

    Episodes are dicts with `rewards` [T] and `in_risky_region` [T] (bool, of step t). An episode *crosses* when
    any flag is set; `first` is its first flagged step.
      about_to_cross  a crossing episode's rows first - lead .. first - 1 (those >= 0)
      inside          the rows whose flag is set
      keepout_early   the first `early` rows of an episode that never crosses
      cross_early     the first `early` rows of a crossing episode
    """
    rows: dict[str, list[np.ndarray]] = {g: [] for g in GROUPS}
    offset = 0
    for i, ep in enumerate(episodes):
        t = len(ep["rewards"])
        flags = np.asarray(ep["in_risky_region"], dtype=bool)
        if flags.shape != (t,):
            raise ValueError(f"episode {i}: in_risky_region must be [{t}] (one flag per reward), got {flags.shape}")
        crosses = bool(flags.any())
        if crosses:
            first = int(np.argmax(flags))
            rows["about_to_cross"].append(offset + np.arange(max(0, first - lead), first))
            rows["inside"].append(offset + np.flatnonzero(flags))
        rows["cross_early" if crosses else "keepout_early"].append(offset + np.arange(min(early, t)))
        offset += t
    return {g: np.concatenate(r).astype(np.int64) if r else np.zeros(0, np.int64) for g, r in rows.items()}


def empirical_cvar(returns, alpha: float) -> float:
    """Lower-tail CVaR_alpha of samples: the mean of the lowest ceil(alpha * n) of them (at least one)."""
    x = np.sort(np.asarray(returns, dtype=np.float64))
    if x.size == 0:
        raise ValueError("empirical_cvar of no samples")
    k = max(1, math.ceil(alpha * x.size - 1e-9))  # 0.1 * 30 is 3.0000000000000004 in floats: still 3
    return float(x[:k].mean())


@dataclass
class FitData:
    """A map model and the windows and maps of the trade-off maps it is checked on."""

    config: CoreConfig
    normalizers: Normalizers
    networks: dict
    data: WindowDataset
    training_maps: TrainingMaps
    map_names: list[str]
    episodes: list[dict]
    relabel: RiskEventRelabel
    layouts: dict  # {map name: risky_nav Layout}: each map's regions' p and C (--per-map)


def load_model(checkpoint) -> tuple[CoreConfig, Normalizers, dict]:
    """(config, normalizers, networks: in eval mode, without gradients) of a map-conditioned checkpoint, loaded by
    the planner (on the CPU); SystemExit otherwise."""
    try:
        planner = RiskSensitivePlanner.from_checkpoint(checkpoint, device="cpu")
    except CheckpointError as e:
        raise SystemExit(str(e))
    if not planner.map_conditioned:
        raise SystemExit(f"{checkpoint} is a per-map model (model.map_patch_cells == 0): it reads no map, and "
                         f"critic_fit checks a map critic on the maps of its training data")
    return planner.config, planner.normalizers, planner.networks


def tradeoff_maps(names, n_maps: int, dataset) -> list[str]:
    """The first n_maps (sorted) map names that contain "tradeoff"; SystemExit when there are none."""
    chosen = sorted(n for n in names if "tradeoff" in n)[:n_maps]
    if not chosen:
        raise SystemExit(f"{dataset}: no trade-off maps (layouts/*tradeoff*.yaml); critic_fit needs a dataset "
                         f"collected over generated maps (python -m risky_nav.collect --generate N ...)")
    return chosen


def prepare(checkpoint, dataset, n_maps: int = 20) -> FitData:
    """The model, and the windows and training maps of the dataset's first n_maps trade-off maps (as train.py
    builds them, with the checkpoint's gamma)."""
    config, normalizers, networks = load_model(checkpoint)
    layouts = load_dataset_layouts(str(dataset))
    names = tradeoff_maps(layouts, n_maps, dataset)
    layouts = {n: layouts[n] for n in names}  # only the maps checked are rasterised
    maps = load_dataset_maps(str(dataset), layouts)
    episodes = [e for e in load_dataset_episodes(str(dataset)) if e["layout"] in names]
    if not episodes:
        raise SystemExit(f"{dataset}: no episodes on the trade-off maps {names[0]} .. {names[-1]}")
    m = config.model
    data = WindowDataset.from_episodes(episodes, m.horizon, config.training.gamma, source=str(dataset), map_names=names,
                                       state_dim=m.state_dim, goal_dim=m.goal_dim, stride=m.plan_stride)
    training_maps = TrainingMaps.from_grids([maps[n] for n in names], data.episode_map, data.episode_goal, m)
    relabel = RiskEventRelabel.from_exposure(data, load_dataset_risk_exposure(str(dataset), episodes, layouts))
    return FitData(config, normalizers, networks, data, training_maps, names, episodes, relabel, layouts)


def redrawn_returns(fit: FitData, rows: np.ndarray, draws: int = REDRAWS, seed: int = 0) -> np.ndarray:
    """[len(rows), draws]: each window's return with its path's risk events re-drawn `draws` times."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.as_tensor(rows, dtype=torch.long)
    return torch.stack([fit.relabel.returns(fit.data, idx, g) for _ in range(draws)], 1).double().numpy()


@torch.no_grad()
def predict(fit: FitData, rows: np.ndarray, alpha: float) -> np.ndarray:
    """[len(rows), 2]: the critic's CVaR_alpha and mean of each window at noise level 0, in return units."""
    norm, nets, data = fit.normalizers, fit.networks, fit.data
    weights = tail_weights(torch.tensor([alpha]), fit.config.model.n_quantiles)[0]
    out = []
    for chunk in torch.as_tensor(rows, dtype=torch.long).split(BATCH):
        b = data.batch(chunk)
        x0 = norm.plan.normalize(to_plan_frame(b["windows"]))
        patches = fit.training_maps.patches(b["windows"][:, 0, :2], b["episode"])
        context = model_context(norm, nets["map_encoder"], b["windows"][:, 0], b["goal"], patches)
        if fit.config.model.critic_reads_continuation:  # each window scored with where its episode went on after it
            context = torch.cat([context, b["goes_on_into_risk"][:, None]], -1)
        along = MapView(patches, fit.training_maps.extent_m, norm.plan).along(x0)
        q = nets["critic"](x0, context, x0.new_zeros(len(chunk)), along)
        q = norm.returns.unnormalize(q).sort(-1).values  # tail_weights weigh ascending quantiles
        out.append(torch.stack([(q * weights).sum(-1), q.mean(-1)], -1))
    return torch.cat(out).double().numpy()


def fit_rows(fit: FitData, alpha: float = 0.1) -> list[dict]:
    """One dict per group (GROUPS order): group, windows (all maps), maps (those with >= MIN_WINDOWS windows in the
    group), and over those maps the mean of predicted_cvar, empirical_cvar, redrawn_cvar (pooled, events re-drawn),
    path_cvar (each window's own, events re-drawn), predicted_mean, empirical_mean (NaN when no map has enough
    windows)."""
    check_alpha(alpha)
    data = fit.data
    out = []
    for group, rows in group_rows(fit.episodes).items():
        per_map = []
        if len(rows):
            pred = predict(fit, rows, alpha)
            idx = torch.as_tensor(rows, dtype=torch.long)
            returns = data.returns[data.starts[idx]].double().numpy()
            redrawn = redrawn_returns(fit, rows)
            k = max(1, math.ceil(alpha * redrawn.shape[1] - 1e-9))
            path_cvar = np.sort(redrawn, 1)[:, :k].mean(1)
            map_of = data.episode_map[data.episode[idx]].numpy()
            for j in np.unique(map_of):
                s = map_of == j
                if s.sum() < MIN_WINDOWS:
                    continue
                per_map.append((fit.map_names[j], (pred[s, 0].mean(), empirical_cvar(returns[s], alpha),
                                empirical_cvar(redrawn[s].ravel(), alpha), path_cvar[s].mean(), pred[s, 1].mean(),
                                returns[s].mean())))
        means = np.mean([v for _, v in per_map], 0) if per_map else np.full(len(COLUMNS), np.nan)
        out.append({"group": group, "windows": int(len(rows)), "maps": len(per_map),
                    **dict(zip(COLUMNS, map(float, means))),
                    "per_map": {name: dict(zip(COLUMNS, map(float, v))) for name, v in per_map}})
    return out


def markdown_table(rows: list[dict], alpha: float) -> str:
    cell = lambda v: "-" if math.isnan(v) else f"{v:.2f}"  # noqa: E731
    a = f"CVaR_{alpha:g}"
    lines = [f"| group | windows (maps) | predicted {a} | empirical {a} | empirical {a}, events re-drawn | "
             f"each window's own {a}, events re-drawn | predicted mean | empirical mean |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['group']} | {r['windows']} ({r['maps']} maps) | "
                     + " | ".join(cell(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def crossed_region(layout) -> tuple[float, float]:
    """(p, C) of the region a trade-off map's short cut crosses: the one risky_nav.mapgen names SHORTCUT_REGION, else
    (a hand-made layout) the one with the largest p x C."""
    regions = getattr(layout, "risky_regions", ())
    if not regions:
        return float("nan"), float("nan")
    named = [r for r in regions if r.name == SHORTCUT_REGION]
    r = named[0] if named else max(regions, key=lambda r: r.p * r.penalty)
    return float(r.p), float(r.penalty)


def per_map_table(rows: list[dict], layouts: dict, groups=("about_to_cross", "cross_early")) -> str:
    """One line per map: the p and C of the region its short cut crosses, and per group the predicted CVaR, the
    re-drawn empirical one and their difference (the error); then, per group, how the error follows C and p x C over
    the maps (Pearson r)."""
    by_group = {r["group"]: r["per_map"] for r in rows if r["group"] in groups}
    names = sorted({name for per_map in by_group.values() for name in per_map})
    head = " | ".join(f"{g}: predicted / re-drawn / error" for g in by_group)
    lines = [f"| map | p | C | {head} |", "|---|--:|--:|" + "---|" * len(by_group)]
    for name in names:
        p, c = crossed_region(layouts.get(name))
        cells = []
        for per_map in by_group.values():
            v = per_map.get(name)
            cells.append("-" if v is None else f"{v['predicted_cvar']:.2f} / {v['redrawn_cvar']:.2f} / "
                         f"{v['predicted_cvar'] - v['redrawn_cvar']:+.2f}")
        lines.append(f"| {name} | {p:.4f} | {c:.1f} | " + " | ".join(cells) + " |")
    for group, per_map in by_group.items():
        maps = [n for n in names if n in per_map]
        if len(maps) < 3:
            continue
        error = [per_map[n]["predicted_cvar"] - per_map[n]["redrawn_cvar"] for n in maps]
        p_c = np.array([crossed_region(layouts.get(n)) for n in maps])
        with_c, with_pc = (np.corrcoef(x, error)[0, 1] for x in (p_c[:, 1], p_c[:, 0] * p_c[:, 1]))
        lines.append(f"\n{group}: the error's correlation over {len(maps)} maps with C {with_c:.2f}, with p x C {with_pc:.2f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.diagnostics.critic_fit",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, required=True,
                    help="a map-conditioned model: file or shipped name")
    ap.add_argument("--dataset", required=True, help="a dataset collected over generated maps (layouts/ beside data/)")
    ap.add_argument("--maps", type=int, default=20, help="the first N trade-off maps (sorted by name)")
    ap.add_argument("--alpha", type=float, default=0.1, help="CVaR level, predicted and empirical")
    ap.add_argument("--per-map", action="store_true", help="also one line per map: the p and C of the region its short cut crosses and "
                    "the critic's error on the crossing groups, and how the error follows C over the maps")
    args = ap.parse_args(argv)
    if args.maps < 1:
        ap.error("--maps must be at least 1")
    try:
        check_alpha(args.alpha)
    except ValueError as e:
        ap.error(str(e))
    torch.set_num_threads(1)
    fit = prepare(args.checkpoint, args.dataset, args.maps)
    print(f"{args.checkpoint} on {len(fit.map_names)} trade-off maps of {args.dataset}: critic at noise level 0 vs "
          f"the windows' Monte-Carlo returns, per map (>= {MIN_WINDOWS} windows), averaged over maps")
    rows = fit_rows(fit, args.alpha)
    print(markdown_table(rows, args.alpha))
    if args.per_map:
        print("\n" + per_map_table(rows, fit.layouts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
