"""The offline-RL trainers' step loop (CODAC, O-RAAC): updates, averaged logs, and an optional time budget."""
from __future__ import annotations

import time
from typing import Callable

import numpy as np


def run_updates(name: str, update: Callable[[], dict], steps: int, log_every: int = 1000, log=print,
                deadline_s: float | None = None) -> list[dict]:
    """Call `update()` up to `steps` times; every `log_every` steps, the mean of what it returned is one history
    row (an update may leave a key out, e.g. O-RAAC's delayed actor). Values may be 0-d tensors: they are read
    only here, so a GPU update never waits for the host. With `deadline_s` (a lent GPU's call is
    bounded) it stops early, keeps what was learned and says at which step."""
    history, running = [], []
    started = time.perf_counter()
    for step in range(1, steps + 1):
        running.append(update())
        out_of_time = deadline_s is not None and time.perf_counter() - started > deadline_s
        if step % log_every == 0 or step == steps or out_of_time:
            keys = sorted({k for r in running for k in r})
            row = {"step": step, **{k: float(np.mean([float(r[k]) for r in running if k in r])) for k in keys}}
            history.append(row)
            running = []
            if log:
                log(f"[{name}] " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()))
        if out_of_time:
            if log:
                log(f"[{name}] stopped at step {step} of {steps}: the {deadline_s:g} s time budget is spent")
            break
    return history
