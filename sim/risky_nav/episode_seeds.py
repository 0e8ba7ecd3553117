"""Env seeds for runs over many maps: map m's episode j is reset with seed + m x episodes + j.

Why: a step's risk event is the env's next uniform draw, and a reset with seed s gives every map the same
stream. Maps that shared seeds would share their events (25 maps with the same 20 seeds are 20 independent
event streams, not 500), so a pooled number and its interval would rest on far fewer draws than they count.
Measured: on the 25 trade-off test maps at seeds 12000.. for every map, alpha 1 met 44 events where its risky
steps and each region's p expect 92 (docs/evaluation.md). The collector and every multi-map evaluation use this.
"""
from __future__ import annotations


def first_episode_seed(seed: int, map_index: int, episodes_per_map: int) -> int:
    """The env seed of episode 0 on the map at `map_index` (0-based, in the run's map order)."""
    if map_index < 0 or episodes_per_map < 1:
        raise ValueError(f"map_index {map_index} must be >= 0 and episodes_per_map {episodes_per_map} >= 1")
    return seed + map_index * episodes_per_map


def main(argv=None) -> int:
    """`python -m risky_nav.episode_seeds SEED MAP_INDEX EPISODES_PER_MAP` prints first_episode_seed (tools/gate.sh
    asks here rather than keep a shell copy of the rule)."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m risky_nav.episode_seeds", description=main.__doc__.split("(")[0])
    for name in ("seed", "map_index", "episodes_per_map"):
        ap.add_argument(name, type=int)
    args = ap.parse_args(argv)
    try:
        print(first_episode_seed(args.seed, args.map_index, args.episodes_per_map))
    except ValueError as e:
        ap.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
