"""Collect one offline dataset over many maps, with worker processes over CPU cores.

Used by `python -m risky_nav.collect --layouts ... | --generate N` (see collect.py). Map m
gets --episodes-per-map episodes; its policy draws come from the generator seeded (seed, m)
and its episode j is reset with seed + m * episodes_per_map + j (episode_seeds.py: maps share no
event draws), so the dataset does not depend on the number of workers. Workers (multiprocessing,
spawn) each run whole maps; the parent writes them in map order. The maps are copied to
`<out>/layouts/<name>.yaml`, every episode names its map (its `layout` attribute), and
`<out>/dataset_stats.json` holds the statistics per map kind (map_analysis.KINDS).
"""
from __future__ import annotations

import json
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import yaml
from tqdm import tqdm

import risky_nav
from risky_nav.dataset import DatasetWriter
from risky_nav.episode_seeds import first_episode_seed
from risky_nav.layout import Layout
from risky_nav.map_analysis import KINDS, NoPathError, analyse

STATS_FILE = "dataset_stats.json"


@dataclass(frozen=True)
class MapTask:
    index: int
    layout: Layout
    yaml_text: str            # what is copied to <out>/layouts/
    episodes: int
    mix: dict
    anywhere: float
    seed: int


def _collect_map(task: MapTask):
    """Worker: every episode of one map, and the map's kind."""
    from risky_nav.collect import run_episodes   # collect imports this module

    try:
        kind = analyse(task.layout).kind
    except NoPathError:
        kind = "no_path"
    env = gym.make(risky_nav.ENV_ID, layout=task.layout, disable_env_checker=True)
    rng = np.random.default_rng([task.seed, task.index])
    first_seed = first_episode_seed(task.seed, task.index, task.episodes)
    episodes = list(run_episodes(env, task.layout, task.episodes, task.mix, task.anywhere, rng, first_seed))
    env.close()
    return task.index, kind, episodes


def collect_maps(maps: list[tuple[Layout, str]], episodes_per_map: int, out: Path, mix: dict[str, float],
                 anywhere: float, seed: int, workers: int = 1, progress: bool = True,
                 source: str = "") -> dict:
    """Collect `episodes_per_map` episodes on each (layout, yaml_text) into the dataset `out`;
    returns the statistics (also written to <out>/dataset_stats.json)."""
    from risky_nav.collect import dataset_id_for

    names = [layout.name for layout, _ in maps]
    if len(set(names)) != len(names):
        raise SystemExit(f"maps must have distinct names (each episode records its map by name); "
                         f"repeated: {sorted({n for n in names if names.count(n) > 1})}")
    out = Path(out)
    layout_dir = out / "layouts"
    layout_dir.mkdir(parents=True, exist_ok=True)
    for layout, text in maps:
        (layout_dir / f"{layout.name}.yaml").write_text(text)
    # Spec and spaces: the first map's env, with the observation bounds of the largest map.
    first = gym.make(risky_nav.ENV_ID, layout=str(layout_dir / f"{names[0]}.yaml"), disable_env_checker=True)
    obs_space = first.observation_space
    high = obs_space.high.copy()
    high[[0, 6]] = max(lay.width for lay, _ in maps)
    high[[1, 7]] = max(lay.height for lay, _ in maps)
    obs_space = gym.spaces.Box(obs_space.low, high, dtype=np.float32)
    writer = DatasetWriter(
        out, dataset_id_for(out), first.spec, obs_space, first.action_space,
        metadata=dict(
            author={"rs_diffuser_ros"}, algorithm_name="scripted policy mix (risky_nav.policies)",
            description=f"RiskyNav, {len(maps)} maps x {episodes_per_map} episodes from a mix of scripted "
                        f"short-cut and detour policies; each episode's map is its 'layout' attribute, "
                        f"the maps are in layouts/<name>.yaml next to data/.",
            code_permalink="sim/risky_nav/collect_maps.py", maps_source=source, layouts_dir="layouts",
            layouts=names, episodes_per_map=episodes_per_map, policy_mix=mix,
            start_goal_anywhere_prob=anywhere, seed=seed))
    first.close()

    tasks = [MapTask(i, layout, text, episodes_per_map, mix, anywhere, seed) for i, (layout, text) in enumerate(maps)]
    per_episode, kinds = [], {}
    started = time.perf_counter()
    bar = tqdm(total=len(tasks) * episodes_per_map, desc=f"collecting {out.name}", unit="ep", disable=not progress)
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(_collect_map, tasks) if pool else map(_collect_map, tasks)
        for index, kind, episodes in results:        # in map order, whatever the workers' pace
            name = names[index]
            kinds[name] = kind
            records, seeds, options = (list(x) for x in zip(*episodes))
            writer.write(records, seeds, options, [name] * len(records))
            per_episode += [(kind, len(r), bool(r.risk_events.any()), bool(r.collisions.any()), r.success)
                            for r in records]
            bar.update(len(records))
    finally:
        if pool:
            pool.close()
            pool.join()
        bar.close()
    stats = dataset_statistics(per_episode, kinds)
    stats.update(wall_seconds=round(time.perf_counter() - started, 1), workers=workers,
                 episodes_per_map=episodes_per_map, seed=seed, maps_source=source, map_kinds=kinds)
    (out / STATS_FILE).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def dataset_statistics(per_episode: list[tuple[str, int, bool, bool, bool]], kinds: dict[str, str]) -> dict:
    """Episodes, steps, maps, and per map kind the share of episodes with a risk event, a
    collision, and reaching the goal; per_episode holds (kind, steps, event, collision, success)."""
    def summary(rows):
        return {"episodes": len(rows), "steps": int(sum(r[1] for r in rows)),
                "risk_event_share": round(float(np.mean([r[2] for r in rows])), 4) if rows else None,
                "collision_share": round(float(np.mean([r[3] for r in rows])), 4) if rows else None,
                "success_share": round(float(np.mean([r[4] for r in rows])), 4) if rows else None}
    by_kind = {}
    for kind in [*KINDS, "no_path"]:
        rows = [r for r in per_episode if r[0] == kind]
        if rows:
            by_kind[kind] = {"maps": sum(k == kind for k in kinds.values()), **summary(rows)}
    return {"maps": len(kinds), **summary(per_episode), "by_kind": by_kind}


def format_statistics(stats: dict) -> str:
    lines = [f"{stats['episodes']} episodes, {stats['steps']} steps, {stats['maps']} maps, "
             f"{stats['wall_seconds']} s with {stats['workers']} worker(s)",
             "| map kind | maps | episodes | steps | with risk event | with collision | success |",
             "|---|---|---|---|---|---|---|"]
    rows = [*stats["by_kind"].items(), ("all", {**stats})]
    for kind, s in rows:
        lines.append(f"| {kind} | {s['maps']} | {s['episodes']} | {s['steps']} | {100 * s['risk_event_share']:.1f}% | "
                     f"{100 * s['collision_share']:.1f}% | {100 * s['success_share']:.1f}% |")
    return "\n".join(lines)


def load_map_files(paths: list[Path]) -> list[tuple[Layout, str]]:
    """(layout, its YAML text) for every file, or every *.yaml in a directory, of `paths`."""
    from risky_nav.layout import LayoutError, parse_layout

    files = []
    for path in paths:
        files += sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    if not files:
        raise SystemExit(f"--layouts: no layout YAML found in {[str(p) for p in paths]}")
    maps = []
    for f in files:
        try:
            text = f.read_text()
            maps.append((parse_layout(yaml.safe_load(text), source=str(f)), text))
        except (LayoutError, yaml.YAMLError, OSError) as err:
            raise SystemExit(f"--layouts: {err}") from None
    return maps
