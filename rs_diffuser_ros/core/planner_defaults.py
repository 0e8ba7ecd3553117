"""A checkpoint's stored planner settings, changed without touching its weights.

A checkpoint carries the inference-time settings its model is run with (`config.planner`; the controller's
sentinels, e.g. `route_candidates: -1` in config/planner.yaml, mean "the model's own"). How a model is best run can
be found after it was trained: the shipped general model is g2 run with 8 route candidates a way. This writes such a
choice into a copy, so the file that ships says how it ships:

    python -m rs_diffuser_ros.core.planner_defaults experiments/checkpoints/stride_mapread_g2.safetensors \
        rs_diffuser_ros/models/general.safetensors route_candidates=8
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from .checkpoint import CheckpointError, read_checkpoint
from .config import ConfigError, CoreConfig, PlannerConfig


def parse_assignment(text: str) -> tuple[str, object]:
    """"name=value" -> (name, value typed as PlannerConfig's field); an unknown name or a bad value raises
    ValueError naming it."""
    name, sep, raw = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(PlannerConfig)}
    if not sep or name not in fields:
        raise ValueError(f"{text!r}: expected NAME=VALUE with NAME one of {', '.join(fields)}")
    kind = type(getattr(PlannerConfig(), name))
    try:
        return name, kind(raw)
    except ValueError:
        raise ValueError(f"{text!r}: {raw!r} is not a {kind.__name__}") from None


def write_planner_defaults(src: str | Path, dst: str | Path, settings: dict[str, object]) -> Path:
    """Copy checkpoint src to dst with `settings` in its stored planner config (validated as any config is);
    the tensors and the other metadata unchanged, plus "planner_defaults_from" naming src's file."""
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    _, _, state_dicts, metadata = read_checkpoint(src)  # refuses a file that is not a sound checkpoint, by name
    tensors = {f"{name}.{key}": value for name, state in state_dicts.items() for key, value in state.items()}
    config = json.loads(metadata["config"])
    config["planner"] = {**config["planner"], **settings}
    try:
        CoreConfig.from_dict(config, where=f"{src} with {settings}")
    except ConfigError as e:
        raise ValueError(str(e)) from None
    metadata = {**metadata, "config": json.dumps(config), "planner_defaults_from": src.name}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.core.planner_defaults", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="a checkpoint")
    ap.add_argument("dst", help="where to write the copy")
    ap.add_argument("settings", nargs="+", help="NAME=VALUE of config.planner, e.g. route_candidates=8")
    args = ap.parse_args(argv)
    try:
        settings = dict(parse_assignment(s) for s in args.settings)
        print(f"wrote {write_planner_defaults(args.src, args.dst, settings)} with planner {settings}")
    except (ValueError, CheckpointError) as e:
        ap.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
