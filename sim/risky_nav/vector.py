"""A batch of N RiskyNav envs stepped together, in this process or spread over worker processes.

    batch = make_env_batch(n_envs=64, workers=8, layout="default")
    obs, infos = batch.reset([0, 1], seeds=[10, 11])              # obs [2, 8]
    obs, reward, terminated, truncated, infos = batch.step(actions, slots=[0, 1])   # actions [2, 2]
    batch.close()                                                  # or use it as a context manager

Every call names the slots it acts on (all N when `slots` is None) and returns rows in that
order; slots not named are left alone, so a finished episode is not stepped on. `infos` is a
dict of arrays, one row per slot: risk_event, risk_penalty, in_risky_region, collision,
goal_reached, distance_to_goal (the env's own info keys). Each slot is a plain RiskyNavEnv
(no gymnasium wrappers) and nothing resets by itself: the caller resets a finished slot,
with the seed it chooses, exactly as with a list of envs. Results are identical to stepping
the same envs one by one with the same seeds and actions.

`SerialEnvBatch` steps all envs in this process (W = 0 or 1; CPU-only machines, tests).
`ProcessEnvBatch` gives each of W spawned workers a contiguous share of the slots. Arrays
travel through one shared-memory block; the pipe to each worker carries only a one-byte
command and its one-byte answer, and the reset arguments. Workers ignore Ctrl-C (the
parent's close() ends them), exit when the parent's end of their pipe closes (the parent
died), and an error or death in a worker raises `EnvWorkerError` naming the worker and its
slots, after which the batch is closed.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
import weakref
from multiprocessing.connection import wait
from pathlib import Path
from typing import Sequence

import numpy as np

from risky_nav.layout import Layout, load_layout

OBS_SIZE, ACTION_SIZE = 8, 2
INFO_FLAGS = ("risk_event", "in_risky_region", "collision", "goal_reached")
INFO_NUMBERS = ("risk_penalty", "distance_to_goal")
# Every per-slot array the batch shares: name -> (dtype, columns; 0 for one value per slot).
FIELDS = {"actions": (np.float64, ACTION_SIZE), "obs": (np.float32, OBS_SIZE), "reward": (np.float64, 0),
          "terminated": (np.bool_, 0), "truncated": (np.bool_, 0), "active": (np.bool_, 0),
          **{k: (np.bool_, 0) for k in INFO_FLAGS}, **{k: (np.float64, 0) for k in INFO_NUMBERS}}
STEP, RESET, CLOSE, OK, FAILED = b"s", b"r", b"c", b"k", b"e"  # FAILED is followed by the worker's traceback
CLOSE_TIMEOUT = 5.0        # seconds a worker gets to exit after CLOSE before it is terminated

LayoutSpec = str | Path | Layout


class EnvWorkerError(RuntimeError):
    """A worker process raised or died; the message names it, its slots and what happened."""


def _field_bytes(n_envs: int) -> list[tuple[str, np.dtype, tuple[int, ...], int]]:
    """(name, dtype, shape, byte offset) of every field in the shared block, 8-byte aligned."""
    fields, offset = [], 0
    for name, (dtype, columns) in FIELDS.items():
        shape = (n_envs, columns) if columns else (n_envs,)
        fields.append((name, np.dtype(dtype), shape, offset))
        offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 8) * 8
    return fields


def _views(buffer, n_envs: int) -> dict[str, np.ndarray]:
    return {name: np.ndarray(shape, dtype, buffer=buffer, offset=offset)
            for name, dtype, shape, offset in _field_bytes(n_envs)}


def _block_size(n_envs: int) -> int:
    _, dtype, shape, offset = _field_bytes(n_envs)[-1]
    return offset + int(np.prod(shape)) * dtype.itemsize


def _make_envs(layouts: Sequence[LayoutSpec], env_kwargs: dict) -> list:
    from risky_nav.env import RiskyNavEnv   # here: the parent of a ProcessEnvBatch never needs PyBullet

    return [RiskyNavEnv(layout, **env_kwargs) for layout in layouts]


def _write(arrays: dict[str, np.ndarray], slots: list[int], results: list[tuple]) -> None:
    """Store step results (obs, reward, terminated, truncated, info) of `slots`, one array at a time."""
    obs, reward, terminated, truncated, infos = zip(*results)
    arrays["obs"][slots] = obs
    arrays["reward"][slots] = reward
    arrays["terminated"][slots] = terminated
    arrays["truncated"][slots] = truncated
    for key in INFO_FLAGS + INFO_NUMBERS:
        arrays[key][slots] = [info[key] for info in infos]


def _step_envs(envs: list, first_slot: int, arrays: dict[str, np.ndarray]) -> None:
    """Step every env of this share whose slot is marked active, with its row of actions."""
    actions = arrays["actions"]
    slots = (np.flatnonzero(arrays["active"][first_slot:first_slot + len(envs)]) + first_slot).tolist()
    if slots:
        _write(arrays, slots, [envs[slot - first_slot].step(actions[slot]) for slot in slots])


def _reset_envs(envs: list, first_slot: int, arrays: dict[str, np.ndarray],
                requests: list[tuple[int, int | None, dict | None]]) -> None:
    results = []
    for slot, seed, options in requests:
        obs, info = envs[slot - first_slot].reset(seed=seed, options=options)
        results.append((obs, 0.0, False, False, info))
    if results:
        _write(arrays, [slot for slot, _, _ in requests], results)


class _EnvBatch:
    """What both implementations share: argument checks and the arrays handed back."""

    def __init__(self, n_envs: int, layout: LayoutSpec | Sequence[LayoutSpec]):
        if int(n_envs) < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        self.num_envs = int(n_envs)
        if isinstance(layout, (str, Path, Layout)):
            layout = [layout] * self.num_envs
        layout = list(layout)
        if len(layout) != self.num_envs:
            raise ValueError(f"got {len(layout)} layouts for {self.num_envs} envs; give one, or one per env")
        # Parsed once here, not once per env (YAML costs half an env's construction), and a bad
        # layout fails here rather than inside a worker.
        parsed = {spec: load_layout(spec) for spec in {s for s in layout if not isinstance(s, Layout)}}
        self.layouts = [spec if isinstance(spec, Layout) else parsed[spec] for spec in layout]
        self._arrays: dict[str, np.ndarray] = {}
        self._closed = False

    def __len__(self) -> int:
        return self.num_envs

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _slots(self, slots) -> np.ndarray:
        if slots is None:
            return np.arange(self.num_envs)
        chosen = np.asarray(slots).reshape(-1)
        if chosen.size and (chosen.dtype.kind not in "iu" or chosen.min() < 0 or chosen.max() >= self.num_envs):
            raise ValueError(f"slots must be integers in [0, {self.num_envs}), got {slots!r}")
        if len(np.unique(chosen)) != len(chosen):
            raise ValueError(f"slots must not repeat, got {slots!r}")
        return chosen.astype(np.int64)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    def reset(self, slots=None, seeds=None, options: dict | Sequence[dict | None] | None = None):
        """Reset `slots` (all when None) with one seed each (None: continue the env's stream) and
        reset options (one dict for all, or one per slot) -> (obs [B, 8], infos of [B])."""
        self._check_open()
        chosen = self._slots(slots)
        seeds = [None] * len(chosen) if seeds is None else list(seeds)
        if len(seeds) != len(chosen):
            raise ValueError(f"got {len(seeds)} seeds for {len(chosen)} slots")
        if options is None or isinstance(options, dict):
            options = [options] * len(chosen)
        options = list(options)
        if len(options) != len(chosen):
            raise ValueError(f"got {len(options)} reset options for {len(chosen)} slots")
        requests = [(int(s), None if seed is None else int(seed), opt) for s, seed, opt in zip(chosen, seeds, options)]
        self._guarded(self._run_reset, requests)
        return self._arrays["obs"][chosen].copy(), self._infos(chosen)

    def step(self, actions, slots=None):
        """Step `slots` (all when None) with actions [B, 2], row i for slots[i]
        -> (obs [B, 8], reward [B], terminated [B], truncated [B], infos of [B])."""
        self._check_open()
        chosen = self._slots(slots)
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != (len(chosen), ACTION_SIZE) or not np.all(np.isfinite(actions)):
            raise ValueError(f"actions must be finite numbers of shape ({len(chosen)}, {ACTION_SIZE}) for "
                             f"{len(chosen)} slots, got shape {actions.shape}")
        arrays = self._arrays
        arrays["active"][:] = False
        arrays["active"][chosen] = True
        arrays["actions"][chosen] = actions
        self._guarded(self._run_step)
        return (arrays["obs"][chosen].copy(), arrays["reward"][chosen].copy(), arrays["terminated"][chosen].copy(),
                arrays["truncated"][chosen].copy(), self._infos(chosen))

    def _guarded(self, run, *args) -> None:
        """An error or Ctrl-C part-way leaves some envs stepped and others not: close the batch."""
        try:
            run(*args)
        except BaseException:
            self.close()
            raise

    def _infos(self, chosen: np.ndarray) -> dict[str, np.ndarray]:
        return {key: self._arrays[key][chosen].copy() for key in INFO_FLAGS + INFO_NUMBERS}

    def _run_reset(self, requests) -> None:
        raise NotImplementedError

    def _run_step(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SerialEnvBatch(_EnvBatch):
    """All N envs in this process, stepped one after another."""

    def __init__(self, n_envs: int, layout: LayoutSpec | Sequence[LayoutSpec] = "default", **env_kwargs):
        super().__init__(n_envs, layout)
        self._use(_make_envs(self.layouts, env_kwargs), owned=True)

    @classmethod
    def from_envs(cls, envs: Sequence) -> "SerialEnvBatch":
        """A batch over envs made elsewhere (RiskyNavEnv, or gymnasium.make's wrappers of one), so code
        written for batches also takes a list of envs. close() leaves them open: their maker closes them."""
        envs = list(envs)
        batch = cls.__new__(cls)
        _EnvBatch.__init__(batch, len(envs), [env.unwrapped.layout for env in envs])
        batch._use(envs, owned=False)
        return batch

    def _use(self, envs: list, owned: bool) -> None:
        self._arrays = {name: np.zeros(shape, dtype) for name, dtype, shape, _ in _field_bytes(self.num_envs)}
        self.envs, self._owns_envs = envs, owned

    def _run_reset(self, requests) -> None:
        _reset_envs(self.envs, 0, self._arrays, requests)

    def _run_step(self) -> None:
        _step_envs(self.envs, 0, self._arrays)

    def close(self) -> None:
        if not self._closed:
            for env in self.envs if self._owns_envs else ():
                env.close()
            self._closed = True


def _worker_main(index: int, conn, block, n_envs: int, first_slot: int, layouts: list, env_kwargs: dict) -> None:
    """One worker: build its envs, then answer commands until CLOSE or until the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle; it closes us
    envs = []
    try:
        try:
            arrays = _views(block, n_envs)
            envs = _make_envs(layouts, env_kwargs)
            answer = OK
        except Exception:  # noqa: BLE001 - reported to the parent, which raises it
            answer = FAILED + traceback.format_exc().encode()
        conn.send_bytes(answer)
        while answer == OK:
            message = conn.recv_bytes()
            command = message[:1]
            if command == CLOSE:
                return
            try:
                if command == STEP:
                    _step_envs(envs, first_slot, arrays)
                elif command == RESET:
                    _reset_envs(envs, first_slot, arrays, conn.recv())  # the requests follow the command
                else:
                    raise RuntimeError(f"unknown command {message[:20]!r}")
                answer = OK
            except Exception:  # noqa: BLE001 - reported to the parent, which then closes the batch
                answer = FAILED + traceback.format_exc().encode()
            conn.send_bytes(answer)
    except (EOFError, OSError):   # the parent died or closed its end: nobody is left to answer
        return
    finally:
        for env in envs:
            env.close()


class ProcessEnvBatch(_EnvBatch):
    """N envs spread over `workers` spawned processes, each stepping a contiguous share."""

    def __init__(self, n_envs: int, workers: int, layout: LayoutSpec | Sequence[LayoutSpec] = "default",
                 start_timeout: float = 120.0, **env_kwargs):
        super().__init__(n_envs, layout)
        if not 1 <= int(workers) <= self.num_envs:
            raise ValueError(f"workers must be in [1, n_envs={self.num_envs}], got {workers}")
        context = mp.get_context("spawn")     # PyBullet and torch state do not survive a fork
        self._block = context.RawArray("b", _block_size(self.num_envs))
        self._arrays = _views(self._block, self.num_envs)
        bounds = np.linspace(0, self.num_envs, int(workers) + 1).round().astype(int)
        self._shares = [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self._processes, self._conns = [], []
        # Registered before starting anything, so a failure part-way still ends what was started.
        self._finalizer = weakref.finalize(self, _shut_down, self._processes, self._conns)
        for index, (lo, hi) in enumerate(self._shares):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=_worker_main, name=f"risky_nav-env-worker-{index}", daemon=True,
                                      args=(index, child_end, self._block, self.num_envs, lo,
                                            self.layouts[lo:hi], env_kwargs))
            process.start()
            child_end.close()                 # so the parent sees EOF if the worker dies
            self._processes.append(process)
            self._conns.append(parent_end)
        try:
            self._collect(range(len(self._shares)), "starting", timeout=start_timeout)
        except BaseException:
            self.close()
            raise

    @property
    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._processes]

    def _worker_label(self, index: int) -> str:
        lo, hi = self._shares[index]
        return f"env worker {index} (pid {self._processes[index].pid}, slots {lo}..{hi - 1})"

    def _collect(self, indices, doing: str, timeout: float | None = None) -> None:
        """Wait for every worker in `indices` to answer OK; raise EnvWorkerError (and close) otherwise."""
        waiting = {self._conns[i]: i for i in indices}
        sentinels = {self._processes[i].sentinel: i for i in indices}
        failure = None
        while waiting and failure is None:
            ready = wait(list(waiting) + list(sentinels), timeout)
            if not ready:
                failure = f"{self._worker_label(next(iter(waiting.values())))} did not answer {doing} within {timeout} s"
            for handle in ready:
                if handle in waiting:
                    i = waiting.pop(handle)
                    sentinels = {s: j for s, j in sentinels.items() if j != i}
                    try:
                        answer = handle.recv_bytes()
                    except (EOFError, OSError):
                        failure = self._death(i, doing)
                        break
                    if answer != OK:
                        failure = f"{self._worker_label(i)} failed {doing}:\n{answer[1:].decode(errors='replace')}"
                        break
                elif handle in sentinels and sentinels[handle] in waiting.values():
                    i = sentinels[handle]
                    if not self._conns[i].poll():      # died without a last word
                        failure = self._death(i, doing)
                        break
        if failure is not None:
            self.close()
            raise EnvWorkerError(failure)

    def _death(self, index: int, doing: str) -> str:
        process = self._processes[index]
        process.join(1.0)
        code = process.exitcode
        how = (f"was killed by signal {-code}" if code is not None and code < 0
               else f"exited with code {code}" if code is not None else "closed its pipe")
        hint = (" (its stderr above says why; a script that starts workers must do so under "
                "`if __name__ == \"__main__\":`, as spawned workers import it again)" if doing == "starting" else "")
        return f"{self._worker_label(index)} {how} while {doing}{hint}"

    def _run_reset(self, requests) -> None:
        by_worker: dict[int, list] = {}
        for request in requests:
            by_worker.setdefault(self._owner(request[0]), []).append(request)
        for index, share in by_worker.items():
            self._send(index, RESET, "reset", share)
        self._collect(by_worker, "reset")

    def _run_step(self) -> None:
        active = self._arrays["active"]
        busy = [i for i, (lo, hi) in enumerate(self._shares) if active[lo:hi].any()]
        for index in busy:
            self._send(index, STEP, "step")
        self._collect(busy, "step")

    def _owner(self, slot: int) -> int:
        for index, (lo, hi) in enumerate(self._shares):
            if lo <= slot < hi:
                return index
        raise AssertionError(f"slot {slot} has no worker")

    def _send(self, index: int, message: bytes, doing: str, payload=None) -> None:
        """A one-byte command, and for a reset its requests (multiprocessing's own send: slots, seeds, options)."""
        try:
            self._conns[index].send_bytes(message)
            if payload is not None:
                self._conns[index].send(payload)
        except (BrokenPipeError, OSError):
            failure = self._death(index, doing)
            self.close()
            raise EnvWorkerError(failure) from None

    def close(self) -> None:
        """Ask every worker to exit, wait briefly, then terminate (and kill) what is left."""
        if not self._closed:
            self._closed = True
            self._finalizer()


def _shut_down(processes: list, conns: list) -> None:
    for conn in conns:
        try:
            conn.send_bytes(CLOSE)
        except (BrokenPipeError, OSError):
            pass
    for process in processes:
        process.join(CLOSE_TIMEOUT)
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
    for conn in conns:
        conn.close()


def make_env_batch(n_envs: int, workers: int = 0, layout: LayoutSpec | Sequence[LayoutSpec] = "default",
                   **env_kwargs) -> SerialEnvBatch | ProcessEnvBatch:
    """In this process for workers 0 or 1, else `workers` processes (at most one per env)."""
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if workers <= 1:
        return SerialEnvBatch(n_envs, layout, **env_kwargs)
    return ProcessEnvBatch(n_envs, min(workers, n_envs), layout, **env_kwargs)


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
