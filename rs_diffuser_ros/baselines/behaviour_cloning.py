"""Behaviour cloning: an MLP policy obs -> action, regressed on the dataset's (obs, action) pairs.

    python -m rs_diffuser_ros.baselines.behaviour_cloning --dataset datasets/<name> --out runs/bc

The same dataset as the diffusion planner's, all of it: BC imitates the mixture of short cuts and
detours the data holds, blind to which of them paid off. Observations are standardised and actions
mapped to [-1, 1] by the dataset's limits (a tanh output keeps them there). The checkpoint is one
safetensors file with the sizes in its metadata; loading never unpickles anything.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from rs_diffuser_ros.core.checkpoint import read_safetensors

FORMAT = "rs_diffuser_ros.baselines.behaviour_cloning/1"
# RiskyNav's sizes: the default, and what checkpoints saved before the sizes were in the metadata hold.
OBS_DIM, ACTION_DIM = 8, 2


class BehaviourCloningError(RuntimeError):
    """A behaviour-cloning checkpoint or dataset that cannot be used; the message names it."""


class BehaviourCloningPolicy(nn.Module):
    def __init__(self, hidden: int = 256, layers: int = 3, obs_dim: int = OBS_DIM, action_dim: int = ACTION_DIM):
        super().__init__()
        self.hidden, self.layers, self.obs_dim, self.action_dim = hidden, layers, obs_dim, action_dim
        blocks, width = [], obs_dim
        for _ in range(layers - 1):
            blocks += [nn.Linear(width, hidden), nn.Mish()]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, action_dim), nn.Tanh())
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
          lr: float = 1e-3, hidden: int = 256, layers: int = 3, seed: int = 0,
          log_every: int = 1000, log=print) -> tuple[BehaviourCloningPolicy, list[tuple[int, float]]]:
    """Mean-squared error in normalised action units; returns the policy and (step, loss) every log_every."""
    torch.manual_seed(seed)
    obs = torch.as_tensor(observations, dtype=torch.float32)
    act = torch.as_tensor(actions, dtype=torch.float32)
    policy = BehaviourCloningPolicy(hidden, layers, obs.shape[1], act.shape[1])
    policy.fit_normalization(obs, act)
    target = policy.normalize_action(act)
    optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
    # Cosine decay: BC's loss is noisy (the data holds two modes); a decaying step settles it.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    history, running = [], []
    for step in range(1, steps + 1):
        rows = torch.randint(0, len(obs), (min(batch_size, len(obs)),), generator=generator)
        loss = ((policy.normalized_action(obs[rows]) - target[rows]) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running.append(loss.item())
        if step % log_every == 0 or step == steps:
            history.append((step, float(np.mean(running))))
            running = []
            if log:
                log(f"[bc] step {step}/{steps}  loss {history[-1][1]:.4f}")
    return policy.eval(), history


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


def load(path: str | Path) -> BehaviourCloningPolicy:
    path = Path(path)
    if not path.is_file():
        raise BehaviourCloningError(f"{path}: no such behaviour-cloning checkpoint (train one with "
                                    f"python -m rs_diffuser_ros.baselines.behaviour_cloning --dataset ... --out ...)")
    metadata, tensors = read_safetensors(path, BehaviourCloningError, "file")
    if metadata.get("format") != FORMAT:
        raise BehaviourCloningError(f"{path}: metadata field 'format' is {metadata.get('format')!r}, expected {FORMAT!r}")
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
    return policy.eval()


def _field(episode, name: str, index: int, source: str) -> np.ndarray:
    value = episode.get(name) if isinstance(episode, dict) else getattr(episode, name, None)
    if value is None:
        raise BehaviourCloningError(f"{source}: episode {index} has no field '{name}'")
    return np.asarray(value, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="dataset path or id for risky_nav.dataset.load_episodes")
    ap.add_argument("--out", required=True, help="output .safetensors file, or a folder to write policy.safetensors in")
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in ("steps", "batch_size", "hidden", "layers"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    out = Path(args.out)
    out = out if out.suffix == ".safetensors" else out / "policy.safetensors"

    from risky_nav.dataset import load_episodes

    episodes = load_episodes(args.dataset)
    obs, act = transitions(episodes, source=args.dataset)
    print(f"[bc] {args.dataset}: {len(episodes)} episodes, {len(obs)} transitions")
    t0 = time.perf_counter()
    policy, history = train(obs, act, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            hidden=args.hidden, layers=args.layers, seed=args.seed)
    wall = time.perf_counter() - t0
    save(policy, out, extra={"dataset": str(args.dataset), "steps": str(args.steps), "seed": str(args.seed),
                             "final_loss": f"{history[-1][1]:.6f}", "transitions": str(len(obs))})
    (out.parent / "bc_losses.json").write_text(json.dumps({"step_loss": history, "wall_s": wall}, indent=1))
    print(f"[bc] wrote {out} ({out.stat().st_size / 1e3:.0f} kB) in {wall:.0f} s; final loss {history[-1][1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
