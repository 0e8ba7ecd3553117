"""Train the denoiser, critic and inverse dynamics on a RiskyNav (or Risky PointMass) dataset.

    python -m rs_diffuser_ros.core.training.train --dataset datasets/<name> --out runs/x \
        [--config config/model.yaml] [--steps N] [--seed 0] [--device auto] [--resume]
    torchrun --nproc_per_node 4 -m rs_diffuser_ros.core.training.train ...   # DDP, batch_size per GPU

Writes to --out: model.safetensors (EMA weights + config + normalisers: what the planner
loads), checkpoints/step_*.safetensors, train_state.pt (for --resume; loaded weights_only),
losses.csv, losses.png, summary.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..checkpoint import load_weights, read_checkpoint, save_checkpoint
from ..config import ConfigError, CoreConfig
from .distributed import DistributedContext
from .ema import EMA
from .losses import TrainingObjective
from ..models.networks import NETWORK_NAMES, build_networks
from ..normalizer import LimitsNormalizer, Normalizers, StandardNormalizer
from ..plan_frame import fit_limits_over_windows, relative_goal
from ..schedule import DiffusionSchedule
from .map_batches import TrainingMaps
from .risk_relabel import RiskEventRelabel
from .training_log import LOSS_NAMES, LossLog, plot_losses
from .windows import WindowDataset

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "config" / "model.yaml"
# What --train-only may name: all networks (None), a fresh critic on the others frozen, or the loaded critic trained on.
TRAIN_ONLY = (None, "critic", "critic_continued")


def fit_normalizers(data: WindowDataset, arrived_only: bool = False) -> Normalizers:
    low, high = fit_limits_over_windows(lambda rows: data.batch(rows)["windows"], len(data))
    starts = data.states[data.starts]
    return Normalizers(
        plan=LimitsNormalizer(low, high),
        goal=LimitsNormalizer.fit(relative_goal(data.goals[data.starts], starts)),
        position=LimitsNormalizer.fit(starts[:, :2]),
        action=LimitsNormalizer.fit(data.transition_actions()),
        returns=fit_return_scale(data, arrived_only),
    )


def fit_return_scale(data: WindowDataset, arrived_only: bool = False) -> StandardNormalizer:
    """The critic's return normaliser: mean and std of the window returns without the extreme RETURN_TRIM at each end
    (arrived_only: of the windows the critic learns from, training.critic_on_arrived)."""
    return StandardNormalizer.fit(data.window_returns(arrived_only), trim=RETURN_TRIM)


# The return scale is fitted without the lowest and highest 0.5 % of window returns. Generated-map data holds a few
# episodes stuck on a wall until the time limit (about 0.2 %, returns down to -700, each giving hundreds of windows):
# with them the std was 22 where the returns otherwise spread 2.7, so a risk event of 8 was 0.4 std, inside the
# quantile-Huber loss's quadratic zone (kappa = 1 std), where a low quantile is pulled by the error's size rather than
# its sign and the stuck windows outweighed the risk events (docs/method_choices.md). Where they are more than the
# trim (d26: about 1 % of windows, std 10.7), training.critic_on_arrived leaves them out of the scale and the loss.
RETURN_TRIM = 0.005

# Under torchrun the ranks agree on the deadline every this many steps: a rank that stopped alone would
# leave the others waiting in the gradient all-reduce (one scalar all-reduce per check, not per step).
DEADLINE_CHECK_STEPS = 20


def train(config: CoreConfig, episodes, out_dir: str | Path, *, seed: int = 0, device: str = "auto",
          resume: bool = False, progress: bool = True, dataset_name: str = "", maps: dict | None = None,
          deadline_s: float = 0.0, init_from: str | Path | None = None, train_only: str | None = None,
          risk_exposure: list | None = None) -> dict:
    """Train all networks; returns the run summary (also written to summary.json).

    maps: {name: (occupancy grid, hazard grid)} of every map the episodes were driven on (their `layout`);
    required for a map-conditioned model (model.map_patch_cells > 0). deadline_s > 0: stop once that many
    seconds have passed since this call began, loading included (the step count reached is in the summary),
    and save as at the end. init_from: start from a trained model's weights and normalisers (a fine-tune);
    a map model trained with fewer map channels grows into this config's (`grow_from` of its networks).
    train_only="critic": a new critic (this config's, e.g. another critic_kind) on init_from's frozen denoiser,
    inverse dynamics and map encoder, which are loaded as they are; only the critic's loss is trained.
    train_only="critic_continued": the same, but init_from's own critic trains on (with its return scale): a critic
    trained further, e.g. on new data or for longer than one run's time allowed.
    risk_exposure: per episode (p, penalty, observed) (load_dataset_risk_exposure); required when
    training.relabel_risk_events is set, which re-draws the critic's return events every batch (risk_relabel.py)."""
    called = time.perf_counter()
    cfg = config.training
    if train_only not in TRAIN_ONLY:
        raise ValueError(f"train_only must be one of {TRAIN_ONLY}, got {train_only!r}")
    out = Path(out_dir)
    ctx = DistributedContext.setup(device)
    state_path = out / "train_state.pt"
    resumed = _read_train_state(state_path, config) if resume and state_path.exists() else None
    if resume and resumed is None and ctx.is_main:
        print(f"[train] --resume: no {state_path}, starting from scratch", file=sys.stderr)
    if train_only and not resumed and not init_from:
        raise ValueError("--train-only critic trains a critic on another model's networks: give --init-from")

    m = config.model
    if m.map_conditioned and not maps:
        raise ValueError("a map-conditioned model (model.map_patch_cells > 0) trains on a dataset whose episodes "
                         "name their maps (layouts/<name>.yaml beside the data): none were given")
    names = sorted(maps) if m.map_conditioned else None
    data = WindowDataset.from_episodes(episodes, m.horizon, cfg.gamma, source=dataset_name or "episodes", map_names=names,
                                       state_dim=m.state_dim, goal_dim=m.goal_dim, stride=m.plan_stride)
    if cfg.critic_on_arrived and data.arrived is None:
        raise ValueError("training.critic_on_arrived trains the critic on the windows of episodes that reached their "
                         "goal: the episodes need their 'terminations' (a dataset collected by risky_nav.collect)")
    relabel = None
    if cfg.relabel_risk_events:
        if risk_exposure is None:
            raise ValueError("training.relabel_risk_events re-draws the risk events of each episode's path: give "
                             "risk_exposure (load_dataset_risk_exposure of a dataset with layouts/ beside its data)")
        relabel = RiskEventRelabel.from_exposure(data, risk_exposure)
    start = None  # (normalisers, weights) of the model a fine-tune starts from
    if init_from and not resumed:
        _, start_normalizers, start_weights, _ = read_checkpoint(init_from)
        start = (start_normalizers, start_weights)
    if resumed:
        normalizers = Normalizers.from_dict(json.loads(resumed["normalizers"]))
    elif train_only == "critic":  # a fresh critic: its return scale is fitted on this data; the frozen networks keep theirs
        normalizers = dataclasses.replace(start[0], returns=fit_return_scale(data, cfg.critic_on_arrived))
    else:
        normalizers = start[0] if start else fit_normalizers(data, cfg.critic_on_arrived)
    data = data.to(ctx.device)
    relabel = relabel.to(ctx.device) if relabel is not None else None
    training_maps = None
    if m.map_conditioned:
        t_fields = time.perf_counter()
        training_maps = TrainingMaps.from_grids([maps[n] for n in names], data.episode_map, data.episode_goal, m,
                                                device=ctx.device)
        if ctx.is_main:
            print(f"[train] {len(names)} maps, {len(data.episode_map)} goal distance fields in "
                  f"{time.perf_counter() - t_fields:.1f} s", file=sys.stderr)

    torch.manual_seed(seed + ctx.rank)
    networks = build_networks(config.model)
    if start:
        load_grown(networks, start[1], init_from, skip=("critic",) if train_only == "critic" else ())
    if train_only:
        for name in NETWORK_NAMES:
            networks[name].requires_grad_(name == "critic")
    schedule = DiffusionSchedule(config.model.diffusion_steps, config.planner.ddim_steps, device=ctx.device)
    if m.route_label and data.goes_into_risk is None:
        raise ValueError("model.route_label trains the denoiser on whether each episode goes into a risky region: the "
                         "episodes need their in_risky_region flags (a dataset collected by risky_nav.collect)")
    objective = TrainingObjective(networks, schedule, normalizers.to(ctx.device), cfg, training_maps,
                                  critic_only=bool(train_only), route_label=m.route_label,
                                  denoiser_reads_map=m.denoiser_reads_map,
                                  critic_continuation=m.critic_reads_continuation,
                                  critic_on_arrived=cfg.critic_on_arrived).to(ctx.device)
    trained = [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    emas = {name: EMA(networks[name], cfg.ema_decay) for name in NETWORK_NAMES}
    generator = torch.Generator(ctx.device).manual_seed(seed * 1000 + ctx.rank)
    step = 0
    if resumed:
        for name in NETWORK_NAMES:
            networks[name].load_state_dict(resumed["networks"][name])
            emas[name].model.load_state_dict(resumed["ema"][name])
        optimizer.load_state_dict(resumed["optimizer"])
        step = int(resumed["step"])
        if ctx.enabled:  # the saved streams are rank 0's: give every rank its own, fresh ones
            generator.manual_seed(seed * 1000 + ctx.rank + 7919 * step)
            torch.manual_seed(seed + ctx.rank + 7919 * step)
        else:  # single process: continue exactly where the interrupted run was
            generator.set_state(resumed["generator"])
            torch.set_rng_state(resumed["torch_rng"])
    model = DistributedDataParallel(objective, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) \
        if ctx.enabled else objective

    out.mkdir(parents=True, exist_ok=True)
    log = LossLog(out / "losses.csv", resume_step=step if resumed else None) if ctx.is_main else None
    wall_offset = float(resumed["wall_s"]) if resumed else 0.0
    t0 = time.perf_counter()
    meta = {"dataset": dataset_name, "seed": str(seed), "world_size": str(ctx.world_size)}

    def save() -> None:
        if not ctx.is_main:
            return
        ema_nets = {n: e.model for n, e in emas.items()}
        extra = {**meta, "step": str(step)}
        save_checkpoint(out / "checkpoints" / f"step_{step:07d}.safetensors", config, normalizers, ema_nets, extra)
        save_checkpoint(out / "model.safetensors", config, normalizers, ema_nets, extra)
        torch.save({
            "step": step, "wall_s": wall_offset + time.perf_counter() - t0,
            "config": json.dumps(config.to_dict()), "normalizers": json.dumps(normalizers.to_dict()),
            "networks": {n: networks[n].state_dict() for n in NETWORK_NAMES},
            "ema": {n: e.model.state_dict() for n, e in emas.items()},
            "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
        }, state_path.with_name(state_path.name + ".tmp"))
        state_path.with_name(state_path.name + ".tmp").replace(state_path)

    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and ctx.is_main), dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, desc="train")
    running = {k: torch.zeros((), device=ctx.device) for k in LOSS_NAMES}
    since_log = 0
    objective.train()
    deadline = called + deadline_s if deadline_s > 0 else math.inf
    stop = deadline < math.inf and ctx.any_rank(time.perf_counter() >= deadline)  # agreed from the first step on
    while step < cfg.steps and not stop:
        rows = torch.randint(len(data), (cfg.batch_size,), device=ctx.device, generator=generator)
        batch = data.batch(rows)
        if relabel is not None:
            # [B, M] with several draws: the quantile loss reads each window's M returns (quantile_loss.py).
            draws = cfg.relabel_draws if cfg.relabel_draws > 1 else None
            batch["return"] = relabel.returns(data, rows, generator, draws)
        losses = model(batch)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
        optimizer.step()
        step += 1
        for name in NETWORK_NAMES:
            if step < cfg.ema_start:
                emas[name].copy_from(networks[name])
            else:
                emas[name].update(networks[name])
        for k in LOSS_NAMES:
            running[k] += losses[k].detach()
        since_log += 1
        bar.update(1)
        if deadline < math.inf and (not ctx.enabled or step % DEADLINE_CHECK_STEPS == 0):
            stop = ctx.any_rank(time.perf_counter() >= deadline)
        if step % cfg.log_every == 0 or step == cfg.steps or stop:
            means = {k: float(v) / since_log for k, v in running.items()}  # one sync per log interval
            running = {k: torch.zeros((), device=ctx.device) for k in LOSS_NAMES}
            since_log = 0
            if log is not None:
                log.append(step, means, wall_offset + time.perf_counter() - t0)
                bar.set_postfix({k[:4]: f"{v:.4f}" for k, v in means.items()})
        if step % cfg.checkpoint_every == 0 and step < cfg.steps:
            save()
    bar.close()
    save()
    summary = {}
    if ctx.is_main:
        plot_losses(out / "losses.csv", out / "losses.png", title=f"{dataset_name or 'episodes'}: {len(data)} windows")
        rows_logged = LossLog.read(out / "losses.csv")
        summary = {
            "steps": step, "wall_s": round(wall_offset + time.perf_counter() - t0, 2), "device": str(ctx.device),
            "world_size": ctx.world_size, "windows": len(data), "batch_size_per_rank": cfg.batch_size,
            "final_losses": {k: rows_logged[-1][k] for k in LOSS_NAMES} if rows_logged else {},
            "dataset": dataset_name, "seed": seed,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    ctx.barrier()
    ctx.close()
    return summary


def load_grown(networks: dict, state_dicts: dict, source: str | Path, skip: tuple[str, ...] = ()) -> None:
    """Load a trained model's weights into `networks` (a warm start): strictly (load_weights names what differs),
    except that a network with `grow_from` (map encoder, map critic) also takes one that read fewer map channels.
    Networks named in `skip` keep their fresh weights."""
    for name in NETWORK_NAMES:
        if name in skip:
            continue
        net = networks[name]
        if hasattr(net, "grow_from"):
            net.grow_from(state_dicts[name])
        else:
            load_weights(net, state_dicts[name], source, name)


def _read_train_state(path: Path, config: CoreConfig) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt / foreign files
        raise RuntimeError(f"{path}: cannot load training state for --resume ({type(e).__name__}: {e})") from e
    for field in ("step", "config", "normalizers", "networks", "ema", "optimizer", "generator", "torch_rng"):
        if field not in state:
            raise RuntimeError(f"{path}: training state has no field '{field}'")
    # Through from_dict, so a field added since (at its default) reads as the default, not as a difference.
    try:
        saved = CoreConfig.from_dict(json.loads(state["config"]), where=f"{path} (config)").to_dict()
    except ConfigError as e:
        raise RuntimeError(f"{path}: the training state's config is not one this code reads ({e})") from e
    current = config.to_dict()
    # The run length may grow on resume; everything that shapes the networks or the objective may not.
    diffs = [f"{sec}.{k}: saved {saved[sec].get(k)!r} vs now {v!r}" for sec in ("model", "training")
             for k, v in current[sec].items() if k not in ("steps", "log_every", "checkpoint_every")
             and _jsonish(saved[sec].get(k)) != _jsonish(v)]
    if diffs:
        raise RuntimeError(f"{path}: --resume with a different config: " + "; ".join(diffs))
    return state


def _jsonish(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def load_dataset_episodes(dataset: str):
    """Episodes through risky_nav's loader (Minari/HDF5 only; it does not need pybullet)."""
    try:
        from risky_nav.dataset import load_episodes
    except ImportError as e:
        raise SystemExit(f"cannot import risky_nav.dataset.load_episodes ({e}); is the package installed / sourced?")
    return load_episodes(dataset)


def load_dataset_layouts(dataset: str) -> dict:
    """{name: risky_nav Layout} of the maps in the dataset's layouts/ folder (collect_maps.py)."""
    try:
        from risky_nav.dataset import resolve_data_file
        from risky_nav.layout import load_layout
    except ImportError as e:
        raise SystemExit(f"cannot import risky_nav ({e}); is the package installed / sourced?")
    folder = resolve_data_file(dataset).parents[1] / "layouts"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise SystemExit(f"{folder}: no map YAMLs; a map-conditioned model trains on a dataset collected over maps "
                         f"(python -m risky_nav.collect --generate N ...)")
    return {f.stem: load_layout(str(f)) for f in files}


def load_dataset_maps(dataset: str, layouts: dict | None = None) -> dict:
    """{name: (occupancy grid, hazard grid, severity grid)} of the dataset's maps (`layouts`: load_dataset_layouts's,
    read when None), rasterised by risky_nav as the sim node publishes them on /costmap, /risk_map and
    /risk_severity_map."""
    from risky_nav.occupancy import occupancy_grid, risk_grid, severity_grid

    layouts = load_dataset_layouts(dataset) if layouts is None else layouts
    return {name: (occupancy_grid(layout), risk_grid(layout), severity_grid(layout)) for name, layout in layouts.items()}


def load_dataset_risk_exposure(dataset: str, episodes, layouts: dict | None = None) -> list:
    """Per episode (p [T, R], penalty [T, R], observed penalty [T]) of its map's risky regions along its recorded
    path (risky_nav.risk_exposure), for training.relabel_risk_events; `layouts`: load_dataset_layouts's (read when
    None)."""
    from risky_nav.risk_exposure import observed_penalties, region_exposure

    layouts = load_dataset_layouts(dataset) if layouts is None else layouts
    out = []
    for i, ep in enumerate(episodes):
        layout = layouts.get(ep.get("layout", ""))
        if layout is None:
            raise SystemExit(f"{dataset}: episode {i} names map {ep.get('layout', '')!r}, not in its layouts/ folder: "
                             f"relabelling risk events needs each episode's layout (a dataset collected with "
                             f"python -m risky_nav.collect)")
        # The env checks the position after each step; recorded float32 positions may sit a hair outside a box the
        # float64 one was in, so the boxes grow by 1 mm and the recorded in-region flags decide.
        p, c = region_exposure(layout, ep["observations"][1:, :2], margin=1e-3)
        outside = ~ep["in_risky_region"]
        p[outside], c[outside] = 0.0, 0.0
        try:
            observed = observed_penalties(layout, ep, p, c)
        except ValueError as e:
            raise SystemExit(f"{dataset}: episode {i}: {e}")
        out.append((p, c, observed))
    return out


def load_datasets(datasets: list[str], with_layouts: bool, with_exposure: bool) -> tuple[list, dict | None, list | None]:
    """Episodes, maps ({name: Layout}) and risk exposure (when asked) of one or several datasets, as one. A map name
    found in two datasets must be the same map there (a handover set copies its scripted set's maps)."""
    episodes, layouts, exposure = [], {} if with_layouts else None, [] if with_exposure else None
    for dataset in datasets:
        these = load_dataset_episodes(dataset)
        own = load_dataset_layouts(dataset) if with_layouts else None
        for name, layout in (own or {}).items():
            if name in layouts and dataclasses.replace(layouts[name], source="") != dataclasses.replace(layout, source=""):
                raise SystemExit(f"{dataset}: map {name!r} differs from the map of that name in an earlier dataset")
            layouts[name] = layout
        if with_exposure:
            exposure += load_dataset_risk_exposure(dataset, these, own)
        episodes += these
    return episodes, layouts, exposure


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.core.training.train", description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True, nargs="+", help="dataset path(s) or id(s) for "
                    "risky_nav.dataset.load_episodes; several train as one (e.g. scripted and handover episodes on the "
                    "same maps; a map name must mean the same map in each)")
    ap.add_argument("--out", required=True, help="run directory (created)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="hyper-parameters (default: config/model.yaml)")
    ap.add_argument("--steps", type=int, help="override training.steps")
    ap.add_argument("--batch-size", type=int, help="override training.batch_size (per GPU under torchrun)")
    ap.add_argument("--checkpoint-every", type=int, help="override training.checkpoint_every")
    ap.add_argument("--log-every", type=int, help="override training.log_every")
    ap.add_argument("--relabel-draws", type=int, help="override training.relabel_draws (each window's risk events drawn "
                    "this many times a batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (CUDA when there), cpu, cuda, cuda:N")
    ap.add_argument("--resume", action="store_true", help="continue from --out/train_state.pt")
    ap.add_argument("--init-from", help="start from this model's weights and normalisers (fine-tune; a map model "
                    "with fewer map channels grows into --config's)")
    ap.add_argument("--deadline-s", type=float, default=0.0, help="stop training this many seconds after the run began, "
                    "loading included, and save (0: no limit)")
    ap.add_argument("--train-only", choices=[c for c in TRAIN_ONLY if c], help="critic: train a fresh critic "
                    "(--config's critic_kind) on --init-from's frozen denoiser, inverse dynamics and map encoder; "
                    "critic_continued: train --init-from's own critic on, the rest frozen")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = CoreConfig.from_yaml(args.config) if Path(args.config).exists() or args.config != str(DEFAULT_CONFIG) \
            else CoreConfig()
        overrides = {"steps": args.steps, "batch_size": args.batch_size,
                     "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
                     "relabel_draws": args.relabel_draws}
        for key, value in overrides.items():
            if value is not None:
                setattr(config.training, key, value)
        config.validate(f"{args.config} with command-line overrides")
    except ConfigError as e:
        raise SystemExit(f"config error: {e}")
    started = time.perf_counter()
    episodes, layouts, exposure = load_datasets(args.dataset, config.model.map_conditioned or
                                                config.training.relabel_risk_events, config.training.relabel_risk_events)
    maps = load_dataset_maps(args.dataset[0], layouts) if config.model.map_conditioned else None
    deadline_s = max(args.deadline_s - (time.perf_counter() - started), 1e-3) if args.deadline_s > 0 else 0.0
    summary = train(config, episodes, args.out, seed=args.seed, device=args.device, resume=args.resume,
                    progress=not args.no_progress, dataset_name=" + ".join(args.dataset), maps=maps, deadline_s=deadline_s,
                    init_from=args.init_from, train_only=args.train_only, risk_exposure=exposure)
    if summary:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
