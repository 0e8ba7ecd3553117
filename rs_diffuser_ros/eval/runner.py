"""Closed-loop evaluation of several settings, spread over worker processes.

Each setting's episodes are split over the workers; each worker steps its own batch of
environments in lockstep (lockstep.py) and plans for all of them in one call. Episode i of
every setting resets the env with seed + i, so all settings face the same starts, goals and
risk-event random streams (a paired comparison). Workers are spawned, not forked (torch and
PyBullet state do not survive a fork), and run torch on one thread each: two single-threaded
workers on two cores beat one worker fighting itself over two threads.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from risky_nav import load_layout
from risky_nav.vector import make_env_batch
from tqdm import tqdm

from rs_diffuser_ros.control import ControllerSettings, settings_from_yaml
from rs_diffuser_ros.control.settings import MODEL_OWN
from rs_diffuser_ros.core.checkpoint import read_checkpoint
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.eval.lockstep import run_lockstep
from rs_diffuser_ros.eval.metrics import EpisodeOutcome
from rs_diffuser_ros.eval.policies import PolicyContext, published_grids
from rs_diffuser_ros.shipped import DEFAULT_BC_MODEL, model_path

CPU_BATCH_ENVS = 16


@dataclass
class EvalConfig:
    settings: list                            # eval.settings kinds (PlannerSetting, LearnedPolicySetting, ...)
    layout: str = "default"                   # shipped layout name or path to a layout YAML
    checkpoint: Path = field(default_factory=model_path)  # RS-Diffuser model
    learned_checkpoints: dict = field(default_factory=lambda: {  # a learned baseline kind -> its default policy file
        "behaviour_cloning": model_path(DEFAULT_BC_MODEL), "codac": model_path("codac.safetensors"),
        "oraac": model_path("oraac.safetensors")})
    episodes: int = 200                       # per setting
    seed: int = 0
    workers: int = 1                          # planner processes
    envs_per_worker: int | None = None        # environments in lockstep per worker; None: 16 on CPU, all on a GPU
    env_workers: int = 0                      # processes stepping each worker's envs (0: in the worker itself)
    device: str = "cpu"
    planner_yaml: Path | None = None          # the controller's settings; None: the shipped config/planner.yaml
    controller_overrides: dict = field(default_factory=dict)  # ControllerSettings fields, for every planner setting

    def controller_settings(self, setting) -> ControllerSettings:
        """The controller settings a planner setting runs with: planner.yaml, the run's overrides, the setting's own."""
        overrides = {**self.controller_overrides, "alpha": setting.alpha, "risk_mode": setting.risk_mode,
                     **setting.controller_overrides}
        try:
            return settings_from_yaml(self.planner_yaml, **overrides)
        except (TypeError, ValueError) as e:
            raise ValueError(f"setting {setting.name!r} with {overrides}: {e}") from None

    def validate(self) -> "EvalConfig":
        for name in ("episodes", "workers", "envs_per_worker"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.env_workers < 0:
            raise ValueError(f"env_workers must be >= 0, got {self.env_workers}")
        if not self.settings:
            raise ValueError("no settings to evaluate")
        planner_settings = [s for s in self.settings if s.uses_planner]
        if planner_settings:
            if not Path(self.checkpoint).is_file():
                raise FileNotFoundError(f"--checkpoint {self.checkpoint}: no such file (needed by the planner settings "
                                        f"{[s.name for s in planner_settings]})")
            # Read it and check every setting against its model here, so a bad file or value fails now,
            # not inside a worker.
            core = read_checkpoint(self.checkpoint)[0]
            own = {name: getattr(core.planner, name) for name in MODEL_OWN}
            for s in planner_settings:
                settings = self.controller_settings(s)
                reason = settings.check_with(core)
                if reason:
                    raise ValueError(f"setting {s.name!r}: {reason}")
                dataclasses.replace(core.planner, **settings.planner_fields(own)).validate(f"setting {s.name!r}")
        for s in self.settings:
            s.validate(self)
        load_layout(self.layout)  # fail here, with the layout's own message, not inside a worker
        return self

    @property
    def batch_envs(self) -> int:
        # On a CPU the planner's cost per row stops falling beyond ~16 envs x K candidates; a GPU
        # wants the biggest batch it can get, so every episode of a worker's share at once.
        if self.envs_per_worker is not None:
            return self.envs_per_worker
        return CPU_BATCH_ENVS if self.device == "cpu" else -(-self.episodes // self.workers)


@dataclass
class EvalRun:
    config: EvalConfig
    outcomes: dict[str, list[EpisodeOutcome]]    # setting name -> episodes in index order
    wall_s: float
    plan_seconds: dict[str, float]               # setting name -> time inside the policy's planner calls
    plan_calls: dict[str, int]
    stops: dict[str, dict[str, int]] = field(default_factory=dict)  # setting -> controller stop reason -> commands
    timings: dict[str, float] = field(default_factory=dict)  # lockstep's policy / env / bookkeeping seconds, all workers
    startup_s: float | None = None  # from the start until every worker stepped its envs (spawn, envs, model load)
    stop_whys: dict[str, dict[str, str]] = field(default_factory=dict)  # setting -> stop reason -> its first sentence

    @property
    def total_episodes(self) -> int:
        return sum(len(v) for v in self.outcomes.values())

    @property
    def total_steps(self) -> int:
        return sum(o.length for v in self.outcomes.values() for o in v)

    @property
    def episodes_per_minute(self) -> float:
        return self.total_episodes / max(self.wall_s, 1e-9) * 60

    @property
    def episodes_per_minute_after_startup(self) -> float | None:
        """The rate once every worker was stepping (the tail is in it, the start-up is not)."""
        if self.startup_s is None:
            return None
        return self.total_episodes / max(self.wall_s - self.startup_s, 1e-9) * 60


def split_tasks(config: EvalConfig) -> list[list[tuple[int, list[int]]]]:
    """Per worker: [(setting index, episode indices)], each setting's episodes dealt out evenly."""
    per_worker: list[list[tuple[int, list[int]]]] = [[] for _ in range(config.workers)]
    for s in range(len(config.settings)):
        for w in range(config.workers):
            episodes = list(range(w, config.episodes, config.workers))
            if episodes:
                per_worker[w].append((s, episodes))
    return [tasks for tasks in per_worker if tasks]


def run_tasks(config: EvalConfig, tasks: list[tuple[int, list[int]]], on_episode=None,
              worker_index: int = 0, on_ready=None) -> tuple[list[EpisodeOutcome], dict[str, float], dict[str, int], dict[str, dict]]:
    """Run a worker's share of the evaluation in this process; `on_ready()` is called once, when its envs and
    first policy exist and stepping begins (what came before is the run's start-up)."""
    n_envs = min(config.batch_envs, max(len(eps) for _, eps in tasks))
    layout = load_layout(config.layout)
    envs = make_env_batch(n_envs, workers=config.env_workers, layout=layout)
    outcomes, plan_seconds, plan_calls, stops, whys, timings = [], {}, {}, {}, {}, {}
    try:
        device = worker_device(config.device, worker_index)
        shared = PolicyContext(config, envs, layout, *published_grids(layout), 0,
                               lambda: RiskSensitivePlanner.from_checkpoint(config.checkpoint, device=device), device)
        for setting_index, episodes in tasks:
            setting = config.settings[setting_index]
            # Distinct, reproducible noise for every (setting, worker) pair.
            shared.stream = int(np.random.SeedSequence([config.seed, setting_index, worker_index]).generate_state(1)[0])
            policy = setting.make_policy(shared)
            if on_ready is not None:
                on_ready()
                on_ready = None
            jobs = [(e, config.seed + e) for e in episodes]
            outcomes += run_lockstep(envs, policy, setting.name, jobs, on_episode, timings)
            plan_seconds[setting.name] = getattr(policy, "plan_seconds", 0.0)
            plan_calls[setting.name] = getattr(policy, "plan_calls", 0)
            stops[setting.name] = dict(getattr(policy, "stops", {}))
            whys[setting.name] = dict(getattr(policy, "stop_whys", {}))
    finally:
        envs.close()
    return outcomes, plan_seconds, plan_calls, stops, whys, timings


def _worker_main(config: EvalConfig, tasks, worker_index: int, messages, parent_pid: int) -> None:
    # One thread per worker: on a shared machine two threads per worker measured ~3x slower
    # per network call (threads spinning on a busy core), and the workers already fill the cores.
    torch.set_num_threads(1)

    def report(outcome: EpisodeOutcome) -> None:
        if os.getppid() != parent_pid:  # the parent was killed: do not go on computing for no one
            raise SystemExit(f"evaluation worker {worker_index}: parent process {parent_pid} is gone")
        messages.put(("episode", outcome.setting))

    try:
        result = run_tasks(config, tasks, on_episode=report, worker_index=worker_index,
                           on_ready=lambda: messages.put(("ready", worker_index)))
        messages.put(("done", worker_index, result))
    except BaseException:  # noqa: BLE001 - the parent re-raises it with the worker's traceback
        messages.put(("error", worker_index, traceback.format_exc()))


def evaluate(config: EvalConfig, progress: bool = True) -> EvalRun:
    config.validate()
    worker_tasks = split_tasks(config)
    total = config.episodes * len(config.settings)
    bar = tqdm(total=total, unit="ep", desc="evaluating", disable=not progress, dynamic_ncols=True)
    t0 = time.perf_counter()
    results, ready = [], []  # ready: when each worker began stepping
    try:
        if len(worker_tasks) == 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # as in a worker process (see _worker_main)
            try:
                results.append(run_tasks(config, worker_tasks[0], on_episode=lambda o: bar.update(1),
                                         on_ready=lambda: ready.append(time.perf_counter())))
            finally:
                torch.set_num_threads(threads)
        else:
            results = _run_in_processes(config, worker_tasks, bar, ready)
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    outcomes = {s.name: [] for s in config.settings}
    plan_seconds = {s.name: 0.0 for s in config.settings}
    plan_calls = {s.name: 0 for s in config.settings}
    stops = {s.name: {} for s in config.settings}
    whys: dict[str, dict[str, str]] = {s.name: {} for s in config.settings}
    timings: dict[str, float] = {}
    for worker_outcomes, seconds, calls, worker_stops, worker_whys, worker_timings in results:
        for part, value in worker_timings.items():
            timings[part] = timings.get(part, 0.0) + value
        for o in worker_outcomes:
            outcomes[o.setting].append(o)
        for name in seconds:
            plan_seconds[name] += seconds[name]
            plan_calls[name] += calls[name]
            for reason, count in worker_stops[name].items():
                stops[name][reason] = stops[name].get(reason, 0) + count
            for reason, why in worker_whys[name].items():
                whys[name].setdefault(reason, why)
    for name in outcomes:
        outcomes[name].sort(key=lambda o: o.episode)
    startup = max(ready) - t0 if len(ready) == len(worker_tasks) else None
    return EvalRun(config, outcomes, wall, plan_seconds, plan_calls, stops, timings, startup, whys)


def _run_in_processes(config: EvalConfig, worker_tasks, bar, ready: list) -> list:
    ctx = multiprocessing.get_context("spawn")
    messages = ctx.Queue()
    # Not daemonic: a worker starts env processes of its own (--env-workers), which daemons may not. Workers
    # are ended in the `finally` below, and one whose parent dies stops at its next episode (_worker_main).
    procs = [ctx.Process(target=_worker_main, args=(config, tasks, i, messages, os.getpid()), daemon=False)
             for i, tasks in enumerate(worker_tasks)]
    results, finished = {}, 0
    # A plain `kill` would skip the clean-up below and leave the workers running: exit properly instead.
    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        for p in procs:
            p.start()
        while finished < len(procs):
            try:
                message = messages.get(timeout=5.0)
            except queue.Empty:
                dead = [i for i, p in enumerate(procs) if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise RuntimeError(f"evaluation worker(s) {dead} died (exit codes "
                                       f"{[procs[i].exitcode for i in dead]}) without reporting")
                continue
            if message[0] == "episode":
                bar.update(1)
            elif message[0] == "ready":
                ready.append(time.perf_counter())
            elif message[0] == "done":
                results[message[1]] = message[2]
                finished += 1
            else:
                raise RuntimeError(f"evaluation worker {message[1]} failed:\n{message[2]}")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        for p in procs:
            if p.is_alive() and len(results) < len(procs):
                p.terminate()
            p.join(timeout=10)
    return [results[i] for i in sorted(results)]


def worker_device(device: str, worker_index: int) -> str:
    """Workers share out the GPUs: plain "cuda" on a machine with several means cuda:<worker mod count>."""
    if device == "cuda" and torch.cuda.device_count() > 1:
        return f"cuda:{worker_index % torch.cuda.device_count()}"
    return device


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
