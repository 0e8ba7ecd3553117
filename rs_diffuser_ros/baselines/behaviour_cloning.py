"""Behaviour cloning: an MLP policy obs -> action, regressed on the dataset's (obs, action) pairs.

    python -m rs_diffuser_ros.baselines.behaviour_cloning --dataset datasets/<name> --out runs/bc
    python -m rs_diffuser_ros.baselines.behaviour_cloning --dataset datasets/<maps dataset> --out runs/bc_map \
        --map-conditioned [--device cuda --deadline-s S --batch-size 1024]

The same dataset as the diffusion planner's, all of it: BC imitates the mixture of short cuts and
detours the data holds, blind to which of them paid off. Observations are standardised and actions
mapped to [-1, 1] by the dataset's limits (a tanh output keeps them there). The checkpoint is one
safetensors file with the sizes in its metadata; loading never unpickles anything.

Two kinds, one command line and one `load` (it tells them apart by the file's format):
- per layout (the default): obs = [robot state, goal] in the map's absolute coordinates, so a policy
  knows the one map it was trained on and no other (rs_diffuser_ros/models/behaviour_cloning*.safetensors);
- map-conditioned (--map-conditioned, map_behaviour_cloning.py): what the general diffusion model sees,
  the egocentric map patch, the robot's state without its position and the goal relative to it, so one
  policy drives on any map with a costmap and a risk layer.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from rs_diffuser_ros.core.checkpoint import read_safetensors
from rs_diffuser_ros.core.device import resolve_device

FORMAT = "rs_diffuser_ros.baselines.behaviour_cloning/1"
MAP_FORMAT = "rs_diffuser_ros.baselines.map_behaviour_cloning/1"  # map_behaviour_cloning.py's files
# RiskyNav's sizes: the default, and what checkpoints saved before the sizes were in the metadata hold.
OBS_DIM, ACTION_DIM = 8, 2


class BehaviourCloningError(RuntimeError):
    """A behaviour-cloning checkpoint or dataset that cannot be used; the message names it."""


class BehaviourCloningPolicy(nn.Module):
    def __init__(self, hidden: int = 256, layers: int = 3, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM):
        super().__init__()
        self.hidden, self.layers, self.obs_dim, self.action_dim = hidden, layers, obs_dim, action_dim
        self.net = action_mlp(obs_dim, hidden, layers, action_dim)
        # Fitted on the dataset; saved with the weights.
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.register_buffer("action_low", -torch.ones(action_dim))
        self.register_buffer("action_high", torch.ones(action_dim))

    def fit_normalization(self, observations: Tensor, actions: Tensor) -> None:
        self.obs_mean.copy_(observations.mean(0))
        self.obs_std.copy_(observations.std(0).clamp(min=1e-3))  # a constant input (one goal) must not divide by 0
        self.action_low.copy_(actions.min(0).values)
        self.action_high.copy_(torch.maximum(actions.max(0).values, self.action_low + 1e-3))

    def normalized_action(self, observations: Tensor) -> Tensor:
        return self.net((observations - self.obs_mean) / self.obs_std)

    def normalize_action(self, actions: Tensor) -> Tensor:
        return 2 * (actions - self.action_low) / (self.action_high - self.action_low) - 1

    def forward(self, observations: Tensor) -> Tensor:
        """obs [B, obs_dim] -> action [B, action_dim] in world units."""
        unit = self.normalized_action(observations)
        return self.action_low + (unit + 1) / 2 * (self.action_high - self.action_low)

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(np.asarray(observations, dtype=np.float32))).numpy()


def action_mlp(inputs: int, hidden: int, layers: int, action_dim: int) -> nn.Sequential:
    """`layers` linear layers (Mish between them) ending in tanh: an action in [-1, 1] units."""
    blocks, width = [], inputs
    for _ in range(layers - 1):
        blocks += [nn.Linear(width, hidden), nn.Mish()]
        width = hidden
    return nn.Sequential(*blocks, nn.Linear(width, action_dim), nn.Tanh())


def transitions(episodes, source: str = "dataset") -> tuple[np.ndarray, np.ndarray]:
    """(obs [N, D], action [N, A]) of every step of every episode (dicts or objects with those fields).

    D and A are the first episode's (8 and 2 on RiskyNav, 4 and 2 on Risky PointMass); all must agree."""
    obs, act = [], []
    dims = None
    for i, ep in enumerate(episodes):
        o = _field(ep, "observations", i, source)
        a = _field(ep, "actions", i, source)
        if dims is None and o.ndim == 2 and a.ndim == 2:
            dims = (o.shape[1], a.shape[1])
        obs_dim, action_dim = dims or ("D", "A")
        if o.ndim != 2 or o.shape[1] != obs_dim or a.ndim != 2 or a.shape[1] != action_dim or len(o) != len(a) + 1:
            raise BehaviourCloningError(f"{source}: episode {i} has observations {o.shape} and actions {a.shape}; "
                                        f"expected [T+1, {obs_dim}] and [T, {action_dim}]")
        obs.append(o[:-1])
        act.append(a)
    if not obs:
        raise BehaviourCloningError(f"{source}: no episodes")
    return np.concatenate(obs).astype(np.float32), np.concatenate(act).astype(np.float32)


def train(observations: np.ndarray, actions: np.ndarray, *, steps: int = 20_000, batch_size: int = 512,
          lr: float = 1e-3, hidden: int = 256, layers: int = 3, seed: int = 0, device: str = "cpu",
          deadline_s: float = 0.0, log_every: int = 1000, log=print) -> tuple[BehaviourCloningPolicy, list[tuple[int, float]]]:
    """Mean-squared error in normalised action units; returns the policy (on the CPU) and (step, loss) every log_every."""
    torch.manual_seed(seed)
    dev = resolve_device(device)
    obs = torch.as_tensor(observations, dtype=torch.float32)
    act = torch.as_tensor(actions, dtype=torch.float32)
    policy = BehaviourCloningPolicy(hidden, layers, obs.shape[1], act.shape[1])
    policy.fit_normalization(obs, act)
    target = policy.normalize_action(act).to(dev)
    policy.to(dev)
    obs = obs.to(dev)
    history = fit(policy, lambda rows: ((policy.normalized_action(obs[rows]) - target[rows]) ** 2).mean(), len(obs),
                  steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=dev, deadline_s=deadline_s,
                  log_every=log_every, log=log)
    return policy.cpu().eval(), history


def fit(module: nn.Module, loss_of: Callable[[Tensor], Tensor], rows: int, *, steps: int, batch_size: int, lr: float,
        seed: int, device: torch.device, deadline_s: float = 0.0, log_every: int = 1000, log=print,
        tag: str = "bc") -> list[tuple[int, float]]:
    """Adam on loss_of(random row indices [min(batch_size, rows)] on `device`) for `steps` steps, or until deadline_s
    seconds have passed (> 0). Returns (step, mean loss since the last entry) every log_every steps and at the end.

    The step size decays on a cosine from lr to 0 (BC's loss is noisy, the data holds two modes; a decaying step
    settles it) over the run's progress: steps done / steps, or, with a deadline,
    time spent / deadline_s when that is further along, so a run cut short by its deadline still ends annealed."""
    optimizer = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=lr)
    generator = torch.Generator(device).manual_seed(seed)
    history, running, since = [], torch.zeros((), device=device), 0
    started = time.perf_counter()
    for step in range(1, steps + 1):
        progress = (step - 1) / steps
        if deadline_s > 0:
            progress = max(progress, min((time.perf_counter() - started) / deadline_s, 1.0))
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * progress))
        picked = torch.randint(0, rows, (min(batch_size, rows),), generator=generator, device=device)
        loss = loss_of(picked)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.detach()  # read once per log interval: no device sync per step
        since += 1
        stop = deadline_s > 0 and time.perf_counter() - started >= deadline_s
        if step % log_every == 0 or step == steps or stop:
            history.append((step, float(running) / since))
            running, since = torch.zeros((), device=device), 0
            if log:
                log(f"[{tag}] step {step}/{steps}  loss {history[-1][1]:.4f}  {time.perf_counter() - started:.0f} s")
        if stop:
            break
    return history


def save(policy: BehaviourCloningPolicy, path: str | Path, extra: dict[str, str] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in policy.state_dict().items()}
    metadata = {"format": FORMAT, "hidden": str(policy.hidden), "layers": str(policy.layers),
                "obs_dim": str(policy.obs_dim), "action_dim": str(policy.action_dim), **(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def load(path: str | Path, device: str = "cpu"):
    """A behaviour-cloning policy file of either kind: a BehaviourCloningPolicy (per layout) or, for a file written
    with --map-conditioned, a map_behaviour_cloning.MapBehaviourCloningPolicy; on `device`, in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise BehaviourCloningError(f"{path}: no such behaviour-cloning checkpoint (train one with "
                                    f"python -m rs_diffuser_ros.baselines.behaviour_cloning --dataset ... --out ...)")
    metadata, tensors = read_safetensors(path, BehaviourCloningError, "file")
    if metadata.get("format") == MAP_FORMAT:
        from rs_diffuser_ros.baselines.map_behaviour_cloning import policy_from_file

        return policy_from_file(path, metadata, tensors).to(device)
    if metadata.get("format") != FORMAT:
        raise BehaviourCloningError(f"{path}: metadata field 'format' is {metadata.get('format')!r}, expected {FORMAT!r} "
                                    f"(per layout) or {MAP_FORMAT!r} (map-conditioned): not a behaviour-cloning policy")
    try:
        policy = BehaviourCloningPolicy(int(metadata["hidden"]), int(metadata["layers"]),
                                        int(metadata.get("obs_dim", OBS_DIM)), int(metadata.get("action_dim", ACTION_DIM)))
    except (KeyError, ValueError) as e:
        raise BehaviourCloningError(f"{path}: metadata fields 'hidden', 'layers', 'obs_dim' and 'action_dim' "
                                    f"must be integers ({e!r})") from e
    try:
        policy.load_state_dict(tensors)
    except RuntimeError as e:
        raise BehaviourCloningError(f"{path}: weights do not match hidden={policy.hidden}, layers={policy.layers}: {e}") from e
    return policy.to(device).eval()


def _field(episode, name: str, index: int, source: str) -> np.ndarray:
    value = episode.get(name) if isinstance(episode, dict) else getattr(episode, name, None)
    if value is None:
        raise BehaviourCloningError(f"{source}: episode {index} has no field '{name}'")
    return np.asarray(value, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    ap = argparse.ArgumentParser(prog="python -m rs_diffuser_ros.baselines.behaviour_cloning",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="dataset path or id for risky_nav.dataset.load_episodes")
    ap.add_argument("--out", required=True, help="output .safetensors file, or a folder to write policy.safetensors in")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA when there)")
    ap.add_argument("--deadline-s", type=float, default=0.0, help="stop this many seconds after the command began, "
                    "loading included, and save (0: no limit); the step size anneals over the time as well")
    ap.add_argument("--log-every", type=int, default=1000)
    group = ap.add_argument_group("map-conditioned behaviour cloning (map_behaviour_cloning.py)")
    group.add_argument("--map-conditioned", action="store_true",
                       help="one policy for any map: reads the egocentric map patch, the robot's state without its "
                            "position and the goal relative to it; the dataset must be collected over maps "
                            "(python -m risky_nav.collect --generate N ...: layouts/ beside its data)")
    group.add_argument("--config", help="the map input's settings (model.map_patch_cells, map_patch_m, map_channels, "
                       "map_safe_distance, map_embedding) from this model config (default: config/model.yaml, the "
                       "general diffusion model's)")
    args = ap.parse_args(argv)
    for name in ("steps", "batch_size", "hidden", "layers", "log_every"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.config and not args.map_conditioned:
        ap.error("--config sets the map input: it goes with --map-conditioned")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        ap.error(f"--device: {e}")
    out = Path(args.out)
    out = out if out.suffix == ".safetensors" else out / "policy.safetensors"
    if args.map_conditioned:
        from rs_diffuser_ros.baselines.map_behaviour_cloning import main_map_conditioned

        return main_map_conditioned(args, out, device, started)

    from risky_nav.dataset import load_episodes

    episodes = load_episodes(args.dataset)
    obs, act = transitions(episodes, source=args.dataset)
    print(f"[bc] {args.dataset}: {len(episodes)} episodes, {len(obs)} transitions")
    t0 = time.perf_counter()
    policy, history = train(obs, act, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            hidden=args.hidden, layers=args.layers, seed=args.seed, device=device,
                            deadline_s=remaining_s(args.deadline_s, started), log_every=args.log_every)
    wall = time.perf_counter() - t0
    save(policy, out, extra={"dataset": str(args.dataset), "steps": str(history[-1][0]), "seed": str(args.seed),
                             "final_loss": f"{history[-1][1]:.6f}", "transitions": str(len(obs))})
    write_losses(out, history, wall)
    return 0


def remaining_s(deadline_s: float, started: float) -> float:
    """What is left of a --deadline-s counted from `started` (0: no limit; never 0 or less once one was given)."""
    return max(deadline_s - (time.perf_counter() - started), 1e-3) if deadline_s > 0 else 0.0


def write_losses(out: Path, history: list[tuple[int, float]], wall: float) -> None:
    (out.parent / "bc_losses.json").write_text(json.dumps({"step_loss": history, "wall_s": wall}, indent=1))
    print(f"[bc] wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {wall:.0f} s; {history[-1][0]} steps, "
          f"final loss {history[-1][1]:.4f}")


if __name__ == "__main__":
    sys.exit(main())
