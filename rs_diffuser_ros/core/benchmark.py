"""Replanning latency of the planner: a table of p50 / p90 per setting (speed targets live here, not in tests).

    python -m rs_diffuser_ros.core.benchmark [--checkpoint runs/x/model.safetensors] [--device auto]
        [--candidates 16 32 64] [--ddim-steps 8] [--guidance-on noisy x0] [--threads 1] [--repeats 50]

Without --checkpoint the planner is built from config/model.yaml with random weights (same cost).
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from .planner import RiskSensitivePlanner


def measure(planner: RiskSensitivePlanner, batch: int, repeats: int, warmup: int = 5) -> np.ndarray:
    state = np.array([1.5, 4.0, 0.0, 1.0, 0.0, 0.0], np.float32)
    goal = np.array([10.5, 4.0], np.float32)
    states, goals = np.repeat(state[None], batch, 0), np.repeat(goal[None], batch, 0)
    times = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        planner.plan_batch(states, goals, alpha=0.1)  # ends with a device->host copy, so it is synchronised
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--candidates", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--ddim-steps", type=int, nargs="+", default=[8])
    ap.add_argument("--guidance-on", nargs="+", default=["noisy"], choices=["noisy", "x0"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1], help="states per plan_batch call")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    planner = (RiskSensitivePlanner.from_checkpoint(args.checkpoint, device=args.device) if args.checkpoint
               else RiskSensitivePlanner.from_config(device=args.device))
    print(f"device {planner.device}, torch threads {torch.get_num_threads()}, horizon {planner.horizon}, "
          f"{'checkpoint ' + args.checkpoint if args.checkpoint else 'random weights'}")
    print(f"| {'batch':>5} | {'K':>5} | {'steps':>5} | {'guidance':>8} | {'p50 ms':>8} | {'p90 ms':>8} | {'ms/state':>8} |")
    print("|------:|------:|------:|---------:|---------:|---------:|---------:|")
    for batch, k, steps, on in itertools.product(args.batch, args.candidates, args.ddim_steps, args.guidance_on):
        planner.configure(candidates=k, ddim_steps=steps, guidance_on=on)
        t = measure(planner, batch, args.repeats)
        p50 = np.percentile(t, 50)
        print(f"| {batch:>5} | {k:>5} | {steps:>5} | {on:>8} | {p50:>8.2f} | {np.percentile(t, 90):>8.2f} | {p50 / batch:>8.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
