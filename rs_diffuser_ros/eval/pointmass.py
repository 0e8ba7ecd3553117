"""Closed-loop evaluation on Risky PointMass with CODAC's protocol; writes results.md and results.json.

    python -m rs_diffuser_ros.eval.pointmass --policy bc=runs/pointmass/bc/policy.safetensors \
        --policy codac=runs/pointmass/codac/policy.safetensors \
        --policy oraac=runs/pointmass/oraac/policy.safetensors \
        --policy averse:0.1=runs/pointmass/rs_diffuser/model.safetensors \
        --policy unguided=runs/pointmass/rs_diffuser/model.safetensors --episodes 100 --out out/eval_pointmass

Every method is a policy with one call, act(obs [B, 4]) -> action [B, 2]: the baselines' policy files,
and RS-Diffuser at a planner setting of the RiskyNav evaluation (averse:A, seeking:A, neutral, unguided;
rs_diffuser_ros.eval.settings) around a model trained on the point mass's data (docs/training.md).

CODAC's protocol: episodes from the evaluation start ((0.85, 0.85) + U(-0.05, 0) per axis), the
env's default risk (penalty 50 with probability 0.1 per step started inside the disc), the
policy's deterministic action, CVaR_0.1 = mean of the worst 10 % of returns. Episode i is reset
with seed --seed + i in every setting, so all settings see the same starts. Metrics and their
95 % intervals are the RiskyNav evaluation's (rs_diffuser_ros.eval.metrics); the point mass has
nothing to collide with, so the collision column is dropped. "catastrophic events" are the
penalties that struck, CODAC's "violations"; "violation rate" counts episodes that entered the disc.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from rs_diffuser_ros.eval.metrics import METRICS, EpisodeOutcome, summarize
from rs_diffuser_ros.eval.report import format_estimate
from rs_diffuser_ros.eval.settings import PlannerSetting, SettingError, parse_setting

POLICY_KINDS = ("bc", "codac", "oraac")
PLANNER_KINDS = ("averse", "seeking", "neutral", "unguided")  # RS-Diffuser settings (eval.settings)
COLUMNS = [k for k in METRICS if k != "collision_rate"]
OBS_DIM = 4  # [x, y, goal_x, goal_y]


class PlannerPolicy:
    """RS-Diffuser at one setting: act(obs [B, 4]) -> the first action of the plan it picks [B, 2].

    The planner is called directly, without the shipped Controller: that is the robot's (costmap,
    collision check, velocity limits, goal tolerance), and the point mass has none of them. The
    planner's own noise stream (seeded by its config) makes a run reproducible."""

    def __init__(self, path: str | Path, setting: PlannerSetting, device: str = "cpu"):
        from rs_diffuser_ros.core.config import PlannerConfig
        from rs_diffuser_ros.core.planner import RiskSensitivePlanner

        # unguided's overrides (one candidate, no guidance) are planner settings; those of the controller (carry_plan)
        # have no controller here to apply them
        planner_fields = {f.name for f in dataclasses.fields(PlannerConfig)}
        overrides = {k: v for k, v in setting.controller_overrides.items() if k in planner_fields}
        self.planner = RiskSensitivePlanner.from_checkpoint(path, device=device, **overrides)
        d, g = self.planner.state_dim, self.planner.goal_dim
        if self.planner.map_conditioned or d + g != OBS_DIM:
            raise ValueError(f"{path}: not a Risky PointMass model (needs state_dim + goal_dim = {OBS_DIM} and no map "
                             f"conditioning; it has {d} + {g}, map_patch_cells {self.planner.config.model.map_patch_cells})")
        self.alpha, self.risk_mode = setting.alpha, setting.risk_mode

    def act(self, obs: np.ndarray) -> np.ndarray:
        d, g = self.planner.state_dim, self.planner.goal_dim
        results = self.planner.plan_batch(obs[:, :d], obs[:, d:d + g], self.alpha, self.risk_mode)
        return np.stack([r.action for r in results])


def load_policy(kind: str, path: str | Path):
    """A policy with act(obs [B, 4]) -> action [B, 2]; kind a baseline's or an RS-Diffuser setting (averse:0.1 ...)."""
    if kind.partition(":")[0] in PLANNER_KINDS:
        return PlannerPolicy(path, parse_setting(kind))
    if kind == "bc":
        from rs_diffuser_ros.baselines.behaviour_cloning import load
    elif kind == "codac":
        from rs_diffuser_ros.baselines.codac import load
    elif kind == "oraac":
        from rs_diffuser_ros.baselines.oraac import load
    else:
        raise ValueError(f"unknown policy kind {kind!r}; choose from {POLICY_KINDS} or a setting of {PLANNER_KINDS}")
    return load(path)


def run_episode(env, policy, setting: str, episode: int, seed: int) -> EpisodeOutcome:
    obs, _ = env.reset(seed=seed, options={"eval": True})
    path, events, inside, total = [obs[:2]], [], [], 0.0
    done = False
    while not done:
        action = policy.act(obs[None])[0]
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        path.append(obs[:2])
        events.append(info["risk_event"])
        inside.append(info["in_risky_region"])
        done = terminated or truncated
    return EpisodeOutcome(setting=setting, episode=episode, seed=seed, episode_return=total, length=len(events),
                          success=bool(terminated), collision_steps=0, risky_steps=int(np.sum(inside)),
                          violation_steps=int(np.sum(inside)), risk_events=int(np.sum(events)),
                          path=np.asarray(path, np.float32), event_steps=np.asarray(events, bool))


def evaluate(policies: dict[str, object], episodes: int, seed: int) -> dict[str, list[EpisodeOutcome]]:
    from risky_pointmass.env import RiskyPointMassEnv

    env = RiskyPointMassEnv()   # the paper's setting: risk_prob 0.9, risk_penalty 50
    return {name: [run_episode(env, policy, name, i, seed + i) for i in range(episodes)]
            for name, policy in policies.items()}


def markdown_table(summaries: dict) -> str:
    headings = ["setting"] + [METRICS[k][0] for k in COLUMNS]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for name, summary in summaries.items():
        lines.append("| " + " | ".join([name] + [format_estimate(summary[k], METRICS[k][1]) for k in COLUMNS]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", action="append", required=True, metavar="KIND=PATH",
                    help=f"a policy to evaluate, KIND one of {POLICY_KINDS}; repeat for several "
                         f"(KIND:NAME=PATH names the row, e.g. codac:codac_seed1=...); or RS-Diffuser, "
                         f"SETTING=MODEL with SETTING averse:ALPHA, seeking:ALPHA, neutral or unguided (the row's name)")
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.episodes < 1:
        ap.error("--episodes must be >= 1")
    policies, sources = {}, {}
    for item in args.policy:
        spec, sep, path = item.partition("=")
        kind, _, name = spec.partition(":")
        if not sep or not path:
            ap.error(f"--policy {item!r}: expected KIND=PATH")
        if kind in PLANNER_KINDS:
            try:
                setting = parse_setting(spec)
            except SettingError as e:
                ap.error(f"--policy {item!r}: {e}")
            kind, name, source = spec, setting.name, {"kind": "rs_diffuser", **setting.describe()}
        elif kind not in POLICY_KINDS:
            ap.error(f"--policy {item!r}: unknown kind {kind!r}; choose from {POLICY_KINDS} or a setting of {PLANNER_KINDS}")
        else:
            name, source = name or kind, {"kind": kind}
        if name in policies:
            ap.error(f"--policy {item!r}: a row named {name!r} is already there; name it KIND:NAME=PATH")
        policies[name], sources[name] = load_policy(kind, path), {**source, "checkpoint": path}

    t0 = time.perf_counter()
    outcomes = evaluate(policies, args.episodes, args.seed)
    wall = time.perf_counter() - t0
    summaries = {name: summarize(o) for name, o in outcomes.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    results = {
        "meta": {"env": "RiskyPointMass-v0", "risk_prob": 0.9, "risk_penalty": 50.0, "episodes_per_setting": args.episodes,
                 "env_seeds": f"{args.seed} .. {args.seed + args.episodes - 1}", "start": "evaluation start",
                 "wall_s": round(wall, 2)},
        "settings": {name: {**sources[name], "metrics": {k: summaries[name][k].to_dict() for k in COLUMNS}}
                     for name in policies},
        "episodes": {name: [o.to_dict() for o in outs] for name, outs in outcomes.items()},
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    table = markdown_table(summaries)
    (args.out / "results.md").write_text(
        f"# Risky PointMass, CODAC protocol\n\n{args.episodes} episodes per setting from the evaluation start, "
        f"env seeds {results['meta']['env_seeds']}. Cells: value [95% CI]; rates Wilson, the rest percentile "
        f"bootstrap over episodes.\n\n{table}\n")
    print(table)
    print(f"wrote {args.out / 'results.md'} and results.json ({wall:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
