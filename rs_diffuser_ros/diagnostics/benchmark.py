"""Replanning latency: reference loop vs fast path, as a Markdown table (speed targets live here, not in tests).

A replan is one full `plan_batch` call: guided sampling of K candidates, selection by the critic,
inverse dynamics, and the copy of the results to the host. For every (K, DDIM steps, guidance)
the reference path (plain Python loop, autograd guidance, fp32, no graph) is timed in the same
run as the fast path (and the fast path through torch.compile, path `compiled`; its first replan compiles,
outside the timing), and the fast path's plans are compared with the reference's from the same
seed: the largest difference of the K risk values (return units) and whether it picks the same plan.

    python -m rs_diffuser_ros.diagnostics.benchmark [--checkpoint runs/x/model.safetensors] [--device auto]
        [--candidates 16 32 64] [--ddim-steps 8] [--guidance on off] [--paths reference fast compiled]
        [--precision fp32 bf16] [--threads 1] [--repeats 50] [--time-budget 300] [--route-candidates 8] [--out table.md]
    python -m rs_diffuser_ros.diagnostics.benchmark --train-steps 50 [--device cuda]   # training throughput

Without --checkpoint the planner is built from config/model.yaml with random weights (same cost).
A map-conditioned model plans as the controller has it plan: on a map (a 12 x 8 m grid shaped like the
default layout, with its risky passage) with the costmap term on; the map encoder runs in every replan,
the goal distance fields once (cached per goal, as on the robot).
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import time
import traceback

import numpy as np
import torch

from rs_diffuser_ros.core.config import CoreConfig
from rs_diffuser_ros.core.costmap import Costmap
from rs_diffuser_ros.core.map_input import MapLayers, PlanningMap
from rs_diffuser_ros.core.models.networks import NETWORK_NAMES, build_networks
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.schedule import DiffusionSchedule
from rs_diffuser_ros.core.training.ema import EMA
from rs_diffuser_ros.core.training.losses import TrainingObjective
from rs_diffuser_ros.core.training.map_batches import TrainingMaps
from rs_diffuser_ros.core.training.train import DEFAULT_CONFIG
from rs_diffuser_ros.shipped import resolve_model

# Off the map's cell lattice on purpose: at (1.5, 4.0) every patch cell's centre lies exactly on a 0.1 m map cell
# boundary, where the nearest lookup of the goal distance fields is decided by rounding, and a compiled program
# (other rounding) read neighbouring cells: 2,221 patch values apart, risk 12 apart, for no difference in the code.
STATE = np.array([1.53, 4.02, 0.0, 1.0, 0.0, 0.0], np.float32)
GOAL = np.array([10.5, 4.0], np.float32)
ALPHA = 0.1
PLAN_INPUTS: dict = {}  # map_input and costmap for a map-conditioned model (set in main)


def default_like_map(resolution: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(occupancy, hazard) int8 grids of a 12 x 8 m map like the default layout: boundary walls, a central block
    split by a 2.2 m passage (risky: hazard 6) and a corridor along the top wall."""
    ys, xs = (np.arange(n) * resolution + resolution / 2 for n in (round(8 / resolution), round(12 / resolution)))
    x, y = np.meshgrid(xs, ys)
    walls = (x < 0.1) | (x > 11.9) | (y < 0.1) | (y > 7.9)
    block = (abs(x - 6) <= 2) & ((y <= 2.9) | ((y >= 5.1) & (y <= 6.7)))
    passage = (abs(x - 6) <= 2) & (abs(y - 4) <= 1.1)
    return np.where(walls | block, 100, 0).astype(np.int8), np.where(passage, 6, 0).astype(np.int8)


def plan_inputs(planner: RiskSensitivePlanner) -> dict:
    if not planner.map_conditioned:
        return {}
    occupancy, hazard = default_like_map()
    layers = MapLayers.from_grids(occupancy, 0.05, 0.0, 0.0, hazard, device=planner.device,
                                  passable_clearance_m=planner.config.model.map_passable_clearance_m, route_ways=True)
    return {"map_input": PlanningMap(layers, planner.config.model.map_safe_distance),
            "costmap": Costmap.from_occupancy(occupancy, 0.05, 0.0, 0.0)}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s)"


PATHS = ("reference", "fast", "compiled")


def execute(planner: RiskSensitivePlanner, path: str, precision: str) -> None:
    """Set the planner to compute along `path` (one of PATHS) at `precision`."""
    planner.set_execution(fast=path != "reference", precision=precision, compiled=path == "compiled")


def measure(planner: RiskSensitivePlanner, variants: list[tuple[str, str]], repeats: int, warmup: int = 3):
    """Latencies [variants, repeats] in ms of plan() (it ends with a device->host copy, so it is synchronised)
    and the peak memory per variant in MB (CUDA: allocated during its calls; CPU: the process's peak RSS).
    The variants take turns call by call, so load from other processes on a shared machine hits all alike."""
    for path, precision in variants:  # the fast path captures its CUDA graph (and compiles) in its first call
        execute(planner, path, precision)
        for _ in range(warmup):
            planner.plan(STATE, GOAL, ALPHA, **PLAN_INPUTS)
    cuda = planner.device.type == "cuda"
    times = np.zeros((len(variants), repeats))
    peaks = np.zeros(len(variants))
    for r in range(repeats):
        for v, (path, precision) in enumerate(variants):
            execute(planner, path, precision)
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats(planner.device)
            t0 = time.perf_counter()
            planner.plan(STATE, GOAL, ALPHA, **PLAN_INPUTS)
            times[v, r] = (time.perf_counter() - t0) * 1e3
            if cuda:
                peaks[v] = max(peaks[v], torch.cuda.max_memory_allocated(planner.device) / 2**20)
    if not cuda:
        peaks[:] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return times, peaks


def plan_difference(planner: RiskSensitivePlanner, path: str, precision: str, seed: int = 11) -> tuple[float, float, bool]:
    """Same seed on the reference and on this path: max |risk value difference| (return units),
    max candidate position difference (m), and whether both choose the same candidate."""
    planner.set_execution(fast=False)
    ref = planner.plan(STATE, GOAL, ALPHA, seed=seed, **PLAN_INPUTS)
    execute(planner, path, precision)
    out = planner.plan(STATE, GOAL, ALPHA, seed=seed, **PLAN_INPUTS)
    return (float(np.abs(ref.risk_values - out.risk_values).max()),
            float(np.abs(ref.candidates[..., :2] - out.candidates[..., :2]).max()),
            ref.chosen_index == out.chosen_index)


def latency_table(planner: RiskSensitivePlanner, candidates, steps_list, guidance, paths, precisions,
                  repeats: int, time_budget: float, emit) -> None:
    """Prints the table row by row through `emit` (so a run cut short still leaves the rows it made)."""
    emit("| K | steps | guidance | path | precision | p50 ms | p99 ms | replans/s | peak MB | speed-up | max Δrisk | max Δxy m | same pick |")
    emit("|--:|--:|:--|:--|:--|--:|--:|--:|--:|--:|--:|--:|:--|")
    scale = planner.config.planner.guidance_scale or 1.0
    t_begin = time.perf_counter()
    variants = [(p, q) for p in paths for q in precisions if p != "reference" or q == "fp32"]
    for k, steps, guided in itertools.product(candidates, steps_list, guidance):
        labels = [f"| {k} | {steps} | {guided} | {path} | {precision} |" for path, precision in variants]
        if time.perf_counter() - t_begin > time_budget:
            for label in labels:
                emit(f"{label} skipped: time budget {time_budget:.0f} s spent | | | | | | | |")
            continue
        try:
            planner.configure(candidates=k, ddim_steps=steps, guidance_scale=scale if guided == "on" else 0.0)
            diffs = [plan_difference(planner, path, precision) if path != "reference" else None
                     for path, precision in variants]
            times, peaks = measure(planner, variants, repeats)
        except Exception as e:  # one failing configuration must not lose the rest of the table
            traceback.print_exc()
            for label in labels:
                emit(f"{label} FAILED: {type(e).__name__}: {str(e).splitlines()[0][:120]} | | | | | | | |")
            continue
        ref_p50 = np.percentile(times[variants.index(("reference", "fp32"))], 50) if ("reference", "fp32") in variants else None
        for label, t, peak, diff in zip(labels, times, peaks, diffs):
            p50, p99 = np.percentile(t, 50), np.percentile(t, 99)
            speedup = f"{ref_p50 / p50:.1f}x" if ref_p50 else "-"
            d = f"{diff[0]:.2e} | {diff[1]:.2e} | {'yes' if diff[2] else 'NO'}" if diff else "0 | 0 | (reference)"
            emit(f"{label} {p50:.2f} | {p99:.2f} | {1e3 / t.mean():.0f} | {peak:.0f} | {speedup} | {d} |")
    planner.set_execution()


def training_throughput(device: torch.device, steps: int, batch_size: int | None = None) -> str:
    """Steps/s of the training update (the three losses, backward, clip, AdamW, EMA) on synthetic windows:
    the same work as core.training.train per step, minus the data-set gather."""
    cfg = CoreConfig.from_yaml(DEFAULT_CONFIG)
    b = batch_size or cfg.training.batch_size
    networks = build_networks(cfg.model)
    schedule = DiffusionSchedule(cfg.model.diffusion_steps, cfg.planner.ddim_steps, device=device)
    maps = None
    if cfg.model.map_conditioned:  # one map, one goal: the same per-batch work (gather, patch, encode) as many
        occupancy, hazard = default_like_map()
        layers = MapLayers.from_grids(occupancy, 0.05, 0.0, 0.0, hazard, device=device,
                                      passable_clearance_m=cfg.model.map_passable_clearance_m)
        maps = TrainingMaps(layers, torch.zeros(1, dtype=torch.long), torch.tensor([[10.5, 4.0]]), cfg.model.map_patch_cells,
                            cfg.model.map_patch_m, cfg.model.map_safe_distance, cfg.model.map_channels)
    objective = TrainingObjective(networks, schedule, Normalizers.untrained_defaults().to(device), cfg.training,
                                  maps, denoiser_reads_map=cfg.model.denoiser_reads_map).to(device)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=cfg.training.lr)
    emas = {name: EMA(networks[name], cfg.training.ema_decay) for name in NETWORK_NAMES}
    h = cfg.model.horizon
    walk = torch.cumsum(torch.randn(b, h, 6, device=device) * 0.05, 1) + torch.tensor([5.0, 5.0, 0, 0, 0, 0], device=device)
    batch = {"windows": walk, "goal": torch.rand(b, 2, device=device) * 12, "return": torch.randn(b, device=device),
             "action": torch.rand(b, 2, device=device) * 2 - 1, "episode": torch.zeros(b, dtype=torch.long, device=device)}

    def step():
        losses = objective(batch)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(objective.parameters(), cfg.training.grad_clip)
        optimizer.step()
        for name in NETWORK_NAMES:
            emas[name].update(networks[name])

    for _ in range(5):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    per_s = steps / (time.perf_counter() - t0)
    return (f"training update, batch {b}: {per_s:.1f} steps/s = {per_s * b:,.0f} windows/s "
            f"({cfg.training.steps} steps of the default config: {cfg.training.steps / per_s / 60:.1f} min)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=resolve_model, default=None,
                    help="a model file or a shipped name (general, default, ...); none: random weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--candidates", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--ddim-steps", type=int, nargs="+", default=[8])
    ap.add_argument("--guidance", nargs="+", default=["on"], choices=["on", "off"])
    ap.add_argument("--guidance-on", nargs="+", default=None, choices=["noisy", "x0"],
                    help="where guidance reads the critic; one table each (default: the model's setting)")
    ap.add_argument("--paths", nargs="+", default=["reference", "fast"], choices=PATHS)
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--time-budget", type=float, default=float("inf"), help="seconds; later rows are skipped")
    ap.add_argument("--train-steps", type=int, default=0, help="also time this many training updates")
    ap.add_argument("--route-candidates", type=int, default=None,
                    help="candidates per way that follow a route (planner.route_candidates; default: the model's own)")
    ap.add_argument("--out", help="also write the table (Markdown) here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    planner = (RiskSensitivePlanner.from_checkpoint(args.checkpoint, device=args.device) if args.checkpoint
               else RiskSensitivePlanner.from_config(DEFAULT_CONFIG, device=args.device))
    if args.route_candidates is not None:
        planner.configure(route_candidates=args.route_candidates)
    out = open(args.out, "w") if args.out else None
    PLAN_INPUTS.update(plan_inputs(planner))

    def emit(line: str) -> None:
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    emit(f"device: {device_name(planner.device)}; torch {torch.__version__}  ")
    emit(f"model: {'checkpoint ' + str(args.checkpoint) if args.checkpoint else 'random weights from config/model.yaml'}; "
         f"{'map-conditioned (on a default-like map, costmap term on)' if planner.map_conditioned else 'per-map'}; "
         f"horizon {planner.horizon}, guidance scale {planner.config.planner.guidance_scale}, alpha {ALPHA}, "
         f"route candidates {planner.config.planner.route_candidates} per way, {args.repeats} timed replans per row  ")
    emit(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    emit("")
    for on in args.guidance_on or [planner.config.planner.guidance_on]:
        planner.configure(guidance_on=on)
        emit(f"\nguidance reads the critic on: **{on}**\n")
        latency_table(planner, args.candidates, args.ddim_steps, args.guidance, args.paths, args.precision,
                      args.repeats, args.time_budget, emit)
    emit("")
    emit(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  ")
    if args.train_steps:
        try:
            emit(training_throughput(planner.device, args.train_steps))
        except Exception as e:
            traceback.print_exc()
            emit(f"training throughput FAILED: {type(e).__name__}: {e}")
    if out:
        out.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
