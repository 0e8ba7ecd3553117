"""Episodes from the states the planner reaches: the shipped controller drives, then the detour expert takes over.

The scripted policies' episodes only visit the scripted routes' states. A general model that leaves them (on
gen0009003 its stay-out plans run along the risky region's edge into a gap no route uses) finds no data there,
and from there proposes only the short cut (docs/method_choices.md, "At GPU scale with late_detour"). This is one
round of DAgger's data aggregation, with the detour as the expert: each episode runs the controller (the planner
setting given, e.g. averse:0.1, exactly as the evaluation runs it) for a time drawn per episode, then the
risk-free detour planned from wherever the robot is (risky_nav's WaypointPolicy) to the goal. From the handover on,
the episode is recorded as a dataset episode (policy name `handover`) that starts at the robot's state there: keep-out
windows from the planner's own states, labelled by the expert, and returns-to-go that are the critic's targets as
any episode's. The controller's own part is left out (DAgger trains on the expert's labels only; with it in, the
denoiser also imitates the controller's own approach, as the data of c1 had it: `--keep-controller-part`). An
episode that ends before its handover has no expert part and is not recorded.

    python -m rs_diffuser_ros.eval.handover --checkpoint M --layouts datasets/riskynav/<scripted set>/layouts \\
        --episodes-per-map 10 --setting averse:0.1 --out datasets/riskynav/<name>-v0 [--device cuda]

The maps are another dataset's (its layouts/ folder), so both train together: `core.training.train --dataset
<scripted set> <handover set>`. Map m's episode j resets the env with seed + m * episodes_per_map + j.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import risky_nav
from risky_nav.collect import dataset_id_for
from risky_nav.collect_maps import STATS_FILE, dataset_statistics, format_statistics, load_map_files
from risky_nav.dataset import DatasetWriter
from risky_nav.env import CONTROL_PERIOD
from risky_nav.map_analysis import NoPathError, analyse
from risky_nav.policies import WaypointPolicy
from risky_nav.rollout import EpisodeRecord
from risky_nav.vector import make_env_batch

from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.eval.lockstep import run_lockstep
from rs_diffuser_ros.eval.policies import ControllerPolicy, PolicyContext, published_grids
from rs_diffuser_ros.eval.runner import EvalConfig
from rs_diffuser_ros.eval.settings import PlannerSetting, parse_settings

POLICY_NAME = "handover"
HANDOVER_S = (1.0, 12.0)  # the controller drives this long (drawn per episode) before the expert takes over


class HandoverPolicy:
    """BatchPolicy: the controller (one per slot, planning in one batch) until each episode's handover step, then that
    slot's detour expert, planned afresh from the robot's state at the handover."""

    def __init__(self, controller: ControllerPolicy, layout, n_slots: int, rng: np.random.Generator,
                 handover_s: tuple[float, float] = HANDOVER_S):
        if not 0.0 <= handover_s[0] <= handover_s[1]:
            raise ValueError(f"handover_s must be (low, high) with 0 <= low <= high, got {handover_s}")
        self.controller, self.rng, self.handover_s = controller, rng, handover_s
        self.experts = [WaypointPolicy(layout, avoid_risk=True) for _ in range(n_slots)]
        self.handover_step = [0] * n_slots
        self.steps = [0] * n_slots

    def reset(self, slot: int, obs: np.ndarray) -> None:
        self.controller.reset(slot, obs)
        self.handover_step[slot] = int(round(self.rng.uniform(*self.handover_s) / CONTROL_PERIOD))
        self.steps[slot] = 0

    def handover_at(self, slot: int) -> int:
        """The step of the slot's current episode at which the expert takes over."""
        return self.handover_step[slot]

    def expert_drives(self, slot: int) -> bool:
        return self.steps[slot] >= self.handover_step[slot]

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        actions = np.zeros((len(slots), 2), dtype=np.float32)
        planned = [row for row, slot in enumerate(slots) if not self.expert_drives(slot)]
        if planned:
            actions[planned] = self.controller.act(obs[planned], [slots[row] for row in planned])
        for row, slot in enumerate(slots):
            if self.expert_drives(slot):
                if self.steps[slot] == self.handover_step[slot]:
                    self.experts[slot].reset(obs[row])  # the detour from here
                actions[row] = self.experts[slot](obs[row])
            self.steps[slot] += 1
        return actions


class EpisodeRecorder:
    """Keeps every slot's observations, actions, rewards and flags (run_lockstep's on_step, a policy wrapper for the
    actions) and hands over each finished episode as a risky_nav EpisodeRecord, the datasets' episode format.
    With `first_step` (slot -> step), an episode is recorded from that step on, and dropped if it ended before it."""

    def __init__(self, policy, name: str = POLICY_NAME, first_step: Callable[[int], int] | None = None):
        self.policy, self.name, self.first_step = policy, name, first_step
        self.buffers: dict[int, dict[str, list]] = {}
        self.finished: list[tuple[int, EpisodeRecord]] = []  # (the slot it ran in, the episode); main's log counts them

    def reset(self, slot: int, obs: np.ndarray) -> None:
        self.buffers[slot] = {"observations": [np.array(obs, dtype=np.float32)], "actions": [], "rewards": [],
                              "terminations": [], "truncations": [], "risk_events": [], "collisions": [],
                              "in_risky_region": []}
        self.policy.reset(slot, obs)

    def act(self, obs: np.ndarray, slots: list[int]) -> np.ndarray:
        actions = np.asarray(self.policy.act(obs, slots), dtype=np.float32)
        for slot, action in zip(slots, actions):
            self.buffers[slot]["actions"].append(action.copy())
        return actions

    def on_step(self, slot: int, obs: np.ndarray, reward: float, terminated: bool, truncated: bool, flags: dict) -> None:
        b = self.buffers[slot]
        b["observations"].append(np.array(obs, dtype=np.float32))
        b["rewards"].append(reward)
        b["terminations"].append(terminated)
        b["truncations"].append(truncated)
        b["risk_events"].append(flags["risk_event"])
        b["collisions"].append(flags["collision"])
        b["in_risky_region"].append(flags["in_risky_region"])
        if terminated or truncated:
            b = self.buffers.pop(slot)
            first = self.first_step(slot) if self.first_step is not None else 0
            if first >= len(b["actions"]):  # over before its handover: nothing of the expert's to learn from
                return
            # Rewards and flags from `first` on: the returns-to-go of the states kept are the full episode's.
            self.finished.append((slot, EpisodeRecord(
                policy=self.name, observations=np.stack(b["observations"][first:]),
                actions=np.stack(b["actions"][first:]), rewards=np.asarray(b["rewards"][first:], np.float64),
                **{k: np.asarray(b[k][first:], bool) for k in ("terminations", "truncations", "risk_events",
                                                                "collisions", "in_risky_region")})))


def collect_map(config: EvalConfig, planner: RiskSensitivePlanner, layout, setting: PlannerSetting, episodes: int,
                first_seed: int, rng: np.random.Generator, handover_s=HANDOVER_S, env_workers: int = 0,
                controller_part: bool = False) -> list[tuple[int, EpisodeRecord]]:
    """Up to `episodes` handover episodes on one map, all in lockstep; [(env seed, record)] in seed order, each from
    its handover on (from its start with `controller_part`; without it, an episode that ended before its handover is
    left out). The controller is built as the evaluation builds it (`config`'s controller settings for `setting`,
    the published grids)."""
    envs = make_env_batch(episodes, env_workers, layout)
    try:
        context = PolicyContext(config, envs, layout, *published_grids(layout), int(rng.integers(2**31 - 1)),
                                lambda: planner)
        controller = setting.make_policy(context)
        handover = HandoverPolicy(controller, layout, episodes, rng, handover_s)
        recorder = EpisodeRecorder(handover, first_step=None if controller_part else handover.handover_at)
        # One env per episode: run_lockstep starts episode j in slot j, and no slot is refilled.
        run_lockstep(envs, recorder, setting.name, [(j, first_seed + j) for j in range(episodes)],
                     on_step=recorder.on_step)
    finally:
        envs.close()
    return [(first_seed + slot, record) for slot, record in sorted(recorder.finished, key=lambda pair: pair[0])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.eval.handover", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="the map-conditioned model whose controller drives first")
    ap.add_argument("--layouts", nargs="+", type=Path, required=True,
                    help="map YAMLs or folders of them (another dataset's layouts/, to train with it)")
    ap.add_argument("--episodes-per-map", type=int, default=10)
    ap.add_argument("--setting", default="averse:0.1", help="the planner setting that drives before the handover")
    ap.add_argument("--handover-s", type=float, nargs=2, default=HANDOVER_S, metavar=("LOW", "HIGH"),
                    help="seconds the controller drives, drawn uniformly per episode")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-controller-part", action="store_true",
                    help="record each episode from its start, the controller's part too (the denoiser then also "
                         "imitates the controller); by default from the handover on")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--env-workers", type=int, default=0, help="processes stepping the envs (0: this one)")
    ap.add_argument("--planner-yaml", type=Path, help="the controller's settings (default: config/planner.yaml)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.episodes_per_map < 1:
        ap.error(f"--episodes-per-map must be >= 1, got {args.episodes_per_map}")
    try:
        (setting,) = parse_settings([args.setting])
    except ValueError as e:
        ap.error(str(e))
    if not isinstance(setting, PlannerSetting):
        ap.error(f"--setting must be a planner setting (averse:ALPHA, seeking:ALPHA, neutral), got {args.setting!r}")
    maps = load_map_files(args.layouts)
    config = EvalConfig([setting], checkpoint=args.checkpoint, device=args.device, planner_yaml=args.planner_yaml)
    try:
        config.controller_settings(setting)  # a bad planner YAML or setting fails here, not on the first map
    except ValueError as e:
        ap.error(str(e))
    planner = RiskSensitivePlanner.from_checkpoint(args.checkpoint, device=args.device)
    if not planner.map_conditioned:
        ap.error(f"{args.checkpoint} is a per-map model: the handover data is for a map-conditioned one")

    layout_dir = args.out / "layouts"
    layout_dir.mkdir(parents=True, exist_ok=True)
    for layout, text in maps:
        (layout_dir / f"{layout.name}.yaml").write_text(text)
    first = gym.make(risky_nav.ENV_ID, layout=str(layout_dir / f"{maps[0][0].name}.yaml"), disable_env_checker=True)
    high = first.observation_space.high.copy()  # the observation bounds of the largest map, as collect_maps has them
    high[[0, 6]] = max(lay.width for lay, _ in maps)
    high[[1, 7]] = max(lay.height for lay, _ in maps)
    writer = DatasetWriter(
        args.out, dataset_id_for(args.out), first.spec,
        gym.spaces.Box(first.observation_space.low, high, dtype=np.float32), first.action_space,
        metadata=dict(author={"rs_diffuser_ros"}, algorithm_name=f"handover: {args.setting} controller, then the detour",
                      description=f"RiskyNav, {len(maps)} maps x {args.episodes_per_map} episodes: the controller of "
                                  f"{args.checkpoint} ({args.setting}) drives for {args.handover_s[0]}-"
                                  f"{args.handover_s[1]} s, then the risk-free detour from where the robot is; recorded "
                                  f"{'from the start' if args.keep_controller_part else 'from the handover on'}.",
                      code_permalink="rs_diffuser_ros/eval/handover.py", layouts_dir="layouts",
                      layouts=[lay.name for lay, _ in maps], episodes_per_map=args.episodes_per_map,
                      policy_mix={POLICY_NAME: 1.0}, handover_s=list(args.handover_s), seed=args.seed,
                      checkpoint=str(args.checkpoint), setting=args.setting,
                      controller_part=args.keep_controller_part))
    first.close()
    started, per_episode, kinds = time.perf_counter(), [], {}
    for m, (layout, _) in enumerate(maps):
        try:
            kinds[layout.name] = analyse(layout).kind
        except NoPathError:
            kinds[layout.name] = "no_path"
        pairs = collect_map(config, planner, layout, setting, args.episodes_per_map,
                            args.seed + m * args.episodes_per_map, np.random.default_rng([args.seed, m]),
                            tuple(args.handover_s), args.env_workers, args.keep_controller_part)
        seeds, records = [s for s, _ in pairs], [r for _, r in pairs]
        if records:
            writer.write(records, seeds, [None] * len(records), [layout.name] * len(records))
        per_episode += [(kinds[layout.name], len(r), bool(r.risk_events.any()), bool(r.collisions.any()), r.success)
                        for r in records]
        print(f"{m + 1}/{len(maps)} {layout.name}: {len(records)} recorded, {sum(r.success for r in records)} arrived, "
              f"{sum(bool(r.in_risky_region.any()) for r in records)} entered risk, "
              f"{time.perf_counter() - started:.0f} s", flush=True)
    stats = dataset_statistics(per_episode, kinds)
    stats.update(wall_seconds=round(time.perf_counter() - started, 1), workers=1, episodes_per_map=args.episodes_per_map,
                 seed=args.seed, map_kinds=kinds, checkpoint=str(args.checkpoint), setting=args.setting)
    (args.out / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    print(format_statistics(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
