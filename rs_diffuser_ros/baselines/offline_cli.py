"""The command line every offline-RL baseline trainer shares (CODAC, O-RAAC): a dataset in, a policy file and
a loss log out, the tunable config fields as options (CleanRL's one-source-of-arguments spirit)."""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from rs_diffuser_ros.baselines.offline_data import transitions_from_episodes


def train_from_command_line(name: str, description: str, config_cls, error_cls, options: tuple[str, ...], train, save,
                            argv: list[str] | None = None) -> int:
    """`python -m rs_diffuser_ros.baselines.<name> --dataset D --out O [--<option> ...]`."""
    defaults = config_cls()
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="dataset path or id for risky_nav.dataset.load_episodes")
    ap.add_argument("--out", required=True, help="output .safetensors file, or a folder to write policy.safetensors in")
    for option in options:
        ap.add_argument(f"--{option.replace('_', '-')}", type=type(getattr(defaults, option)),
                        default=getattr(defaults, option))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--deadline-s", type=float, help="stop after this many seconds of training and save what was "
                    "learned (the log says at which step)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_cls(**{k: getattr(args, k) for k in asdict(defaults) if hasattr(args, k)})
    try:
        config.validate()
    except error_cls as e:
        ap.error(str(e))
    out = Path(args.out)
    out = out if out.suffix == ".safetensors" else out / "policy.safetensors"

    from risky_nav.dataset import load_episodes  # the sim's reader: only the trainers need it

    data = transitions_from_episodes(load_episodes(args.dataset), source=args.dataset)
    print(f"[{name}] {args.dataset}: {len(data)} transitions, obs {data.obs_dim}, action {data.action_dim}")
    t0 = time.perf_counter()
    policy, history = train(data, config, args.seed, args.device, deadline_s=args.deadline_s)
    wall = time.perf_counter() - t0
    save(policy, out, config, {"dataset": str(args.dataset), "seed": args.seed, "wall_s": round(wall, 1)})
    (out.parent / f"{name}_log.json").write_text(json.dumps({"history": history, "wall_s": wall,
                                                             "config": asdict(config)}, indent=1))
    print(f"[{name}] wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {wall:.0f} s")
    return 0
