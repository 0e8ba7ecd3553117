"""Collect an offline dataset from a mix of scripted behaviour policies into Minari format.

    python -m risky_nav.collect --layout default --episodes 2000 --out datasets/riskynav/default-v0

Each episode draws its behaviour policy from the mix (short cut, detour, their noisy and
partly random variants), so the dataset holds both routes from the same start distribution.
Starts and goals are sampled in the layout's start/goal regions, and with probability
--anywhere each of them anywhere free instead (coverage of the whole map). Episode i is
reset with seed --seed + i, so a dataset is reproducible from its command line.

Many maps in one dataset (each episode records its map; see collect_maps.py):

    python -m risky_nav.collect --layouts maps/train --episodes-per-map 20 --workers 16 --out datasets/riskynav/maps500-v0
    python -m risky_nav.collect --generate 500 --generate-seed 0 --episodes-per-map 20 --workers 16 --out ...
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import risky_nav
from risky_nav.dataset import DatasetWriter
from risky_nav.policies import POLICY_NAMES, make_policy
from risky_nav.rollout import run_episode

DEFAULT_MIX = {"shortcut": 0.2, "detour": 0.2, "noisy_shortcut": 0.15, "noisy_detour": 0.15,
               "random_shortcut": 0.15, "random_detour": 0.15}
WRITE_EVERY = 100   # episodes buffered before they are appended to the HDF5 file


def parse_mix(text: str, names: tuple[str, ...] = POLICY_NAMES) -> dict[str, float]:
    """'shortcut=0.5,detour=0.5' -> normalised weights; names must be scripted policies (of `names`)."""
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in names:
            raise SystemExit(f"--mix: unknown policy {name!r}; choose from {names}")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise SystemExit(f"--mix: weight of {name!r} must be a number, got {weight!r}") from None
        if mix[name] < 0:
            raise SystemExit(f"--mix: weight of {name!r} must be >= 0, got {mix[name]}")
    total = sum(mix.values())
    if total <= 0:
        raise SystemExit("--mix: weights sum to zero")
    return {k: v / total for k, v in mix.items()}


def dataset_id_for(out: Path) -> str:
    """Minari id matching the directory, so `minari.load_dataset` finds it under its parent."""
    if re.fullmatch(r"[\w.]+-v\d+", out.name):
        return f"{out.parent.name}/{out.name}" if re.fullmatch(r"[\w.]+", out.parent.name) else out.name
    return f"{out.name}-v0"


def run_episodes(env, layout, episodes: int, mix: dict[str, float], anywhere: float, rng: np.random.Generator,
                 first_seed: int):
    """`episodes` episodes of policies drawn from `mix`; episode i is reset with first_seed + i.
    Yields (record, seed, options)."""
    names = list(mix)
    policies = {name: make_policy(name, layout, rng) for name in names}
    for i in range(episodes):
        name = names[rng.choice(len(names), p=[mix[n] for n in names])]
        opts = {"start_anywhere": bool(rng.random() < anywhere), "goal_anywhere": bool(rng.random() < anywhere)}
        yield run_episode(env, policies[name], seed=first_seed + i, options=opts), first_seed + i, opts


def collect(layout: str, episodes: int, out: Path, mix: dict[str, float], anywhere: float,
            seed: int, progress: bool = True) -> DatasetWriter:
    env = gym.make(risky_nav.ENV_ID, layout=layout, disable_env_checker=True)
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(
        out, dataset_id_for(out), env.spec, env.observation_space, env.action_space,
        metadata=dict(
            author={"rs_diffuser_ros"}, algorithm_name="scripted policy mix (risky_nav.policies)",
            description=f"RiskyNav layout '{env.unwrapped.layout.name}': {episodes} episodes from a mix "
                        f"of scripted short-cut and detour policies (with noise and random actions).",
            code_permalink="sim/risky_nav/collect.py",
            layout=str(layout), policy_mix=mix, start_goal_anywhere_prob=anywhere, seed=seed))
    layout_name = env.unwrapped.layout.name
    buffer, seeds, options = [], [], []
    counts = {name: 0 for name in mix}
    bar = tqdm(total=episodes, desc=f"collecting {out.name}", unit="ep", disable=not progress)
    for i, (record, ep_seed, opts) in enumerate(run_episodes(env, env.unwrapped.layout, episodes, mix,
                                                             anywhere, rng, seed)):
        buffer.append(record)
        seeds.append(ep_seed)
        options.append(opts)
        counts[record.policy] += 1
        bar.update()
        if len(buffer) == WRITE_EVERY or i == episodes - 1:
            writer.write(buffer, seeds, options, [layout_name] * len(buffer))
            buffer, seeds, options = [], [], []
            bar.set_postfix({n[:10]: c for n, c in counts.items()})
    bar.close()
    env.close()
    return writer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", default="default", help="layout name or path to a YAML file")
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--out", type=Path, required=True, help="new dataset directory (Minari layout)")
    parser.add_argument("--mix", default=",".join(f"{k}={v}" for k, v in DEFAULT_MIX.items()),
                        help="behaviour policies and weights, e.g. shortcut=1,detour=1")
    parser.add_argument("--anywhere", type=float, default=0.15,
                        help="probability that the start (and, independently, the goal) is sampled "
                             "anywhere free instead of in the layout's region")
    parser.add_argument("--seed", type=int, default=0)
    many = parser.add_argument_group("many maps (instead of --layout)")
    many.add_argument("--layouts", type=Path, nargs="+", help="layout YAMLs, or directories of them")
    many.add_argument("--generate", type=int, metavar="N", help="generate N maps (risky_nav.mapgen)")
    many.add_argument("--generate-seed", type=int, default=0,
                      help="first map seed for --generate (train split: 0..9999)")
    many.add_argument("--episodes-per-map", type=int, default=10)
    many.add_argument("--workers", type=int, default=1, help="worker processes (spawn), e.g. the CPU cores")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.episodes_per_map < 1:
        raise SystemExit("--episodes and --episodes-per-map must be >= 1")
    if not 0 <= args.anywhere <= 1:
        raise SystemExit("--anywhere must be a probability in [0, 1]")
    if args.workers < 1:
        raise SystemExit("--workers must be >= 1")
    if args.layouts or args.generate:
        return _collect_many(args)

    writer = collect(args.layout, args.episodes, args.out, parse_mix(args.mix), args.anywhere, args.seed)
    meta = writer.storage.metadata
    print(f"wrote {meta['total_episodes']} episodes, {meta['total_steps']} steps to {args.out} "
          f"(Minari id {meta['dataset_id']})")
    return 0


def _generated_map(seed: int):
    from risky_nav.mapgen import generate_map

    m = generate_map(seed)
    return m.layout, m.yaml_text()


def _generate(seeds: range, workers: int) -> list:
    """(layout, YAML text) of each generated map, in seed order; a map depends on its seed alone, so the
    workers (spawn) only share out the ~0.2 s per map that 1,000 maps would otherwise spend on one core."""
    bar = dict(total=len(seeds), desc="generating maps", unit="map")
    if workers <= 1:
        return [_generated_map(s) for s in tqdm(seeds, **bar)]
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return list(tqdm(pool.imap(_generated_map, seeds, chunksize=8), **bar))


def _collect_many(args) -> int:
    from risky_nav.collect_maps import collect_maps, format_statistics, load_map_files

    if args.layouts and args.generate:
        raise SystemExit("give --layouts or --generate, not both")
    if args.layouts:
        maps = load_map_files(args.layouts)
        source = " ".join(str(p) for p in args.layouts)
    else:
        from risky_nav.mapgen import TEST_SEEDS

        seeds = range(args.generate_seed, args.generate_seed + args.generate)
        if seeds[0] <= TEST_SEEDS[-1] and seeds[-1] >= TEST_SEEDS[0]:
            raise SystemExit(f"--generate-seed {args.generate_seed} --generate {args.generate} reaches into the "
                             f"held-out test split {TEST_SEEDS[0]}..{TEST_SEEDS[-1]}")
        maps = _generate(seeds, args.workers)
        source = f"risky_nav.mapgen seeds {seeds[0]}..{seeds[-1]}"
    stats = collect_maps(maps, args.episodes_per_map, args.out, parse_mix(args.mix), args.anywhere, args.seed,
                         workers=args.workers, source=source)
    print(format_statistics(stats))
    print(f"wrote {args.out} (statistics: {args.out / 'dataset_stats.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
