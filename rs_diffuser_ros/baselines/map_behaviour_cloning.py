"""Map-conditioned behaviour cloning: one policy for any map, reading what the general diffusion model reads.

    python -m rs_diffuser_ros.baselines.behaviour_cloning --dataset datasets/<maps dataset> --out runs/bc_map \
        --map-conditioned [--config config/model.yaml] [--device cuda --deadline-s S --batch-size 1024]

(the one command line of behaviour_cloning.py; this module is its map-conditioned half). Per robot and step:

- the egocentric map patch of core/map_input.py (the first `map_channels` of PATCH_CHANNELS, map_patch_cells
  cells over map_patch_m, world-aligned, centred on the robot: obstacle, risk, hazard, goal distance, safe
  distance, route length, detour), through core/models/map_encoder.MapEncoder, the general model's encoder
  class at its sizes; map settings from config/model.yaml unless --config names another model config;
- the robot's own state without its position: the plan frame's start state (core/plan_frame.py) less its
  zeroed x, y, i.e. sin_yaw, cos_yaw, v, omega;
- the goal relative to the robot (plan_frame.relative_goal), metres.

The state and goal features are standardised, joined to the map embedding, and an MLP with a tanh output
gives the action in [-1, 1] of the dataset's action limits; the loss is behaviour_cloning.py's MSE, and so is
the training loop (behaviour_cloning.fit). Nothing in the input is an absolute map coordinate.

Training data is a dataset collected over maps (`python -m risky_nav.collect --generate N ...`): each episode
names its map (`layout`), the maps are the YAMLs in `<dataset>/layouts/`. Maps, goal distance fields and
patches come from the diffusion training's own code: core/training/train.load_dataset_maps reads the maps,
windows.WindowDataset indexes every transition's episode and map, map_batches.TrainingMaps (from_grids) holds
the maps' layers and one goal distance field per episode on the training device and cuts each batch's patches
there.

The file (safetensors, format MAP_FORMAT) holds the weights and the normalisers (as tensors) and, in its metadata,
`sizes` (every constructor argument, map settings included: JSON), the feature names, the dataset and the run;
behaviour_cloning.load reads it without unpickling. In the evaluation (`bc:PATH`, eval/policies.py) the patch is
cut from a PlanningMap of the costmap and risk layer the controller gets, for all environments in one batch.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rs_diffuser_ros.baselines.behaviour_cloning import (ACTION_DIM, MAP_FORMAT, BehaviourCloningError, action_mlp, fit,
                                                         remaining_s, write_losses)
from rs_diffuser_ros.baselines.policy_file import load_weights, save_policy
from rs_diffuser_ros.core.config import ConfigError, CoreConfig, ModelConfig
from rs_diffuser_ros.core.device import resolve_device
from rs_diffuser_ros.core.map_input import BASE_CHANNELS, PATCH_CHANNELS, PlanningMap
from rs_diffuser_ros.core.models.map_encoder import MapEncoder
from rs_diffuser_ros.core.plan_frame import relative_goal
from rs_diffuser_ros.core.training.map_batches import TrainingMaps
from rs_diffuser_ros.core.training.windows import WindowDataset

ENCODER_WIDTH = 32  # MapEncoder's default: the general model's encoder


class MapBehaviourCloningPolicy(nn.Module):
    """obs [B, state_dim + goal_dim] (world frame) + the map they are on -> action [B, action_dim]."""

    map_conditioned = True

    def __init__(self, map_channels: int, map_patch_cells: int, map_patch_m: float, map_safe_distance: bool,
                 map_embedding: int = 64, encoder_width: int = ENCODER_WIDTH, hidden: int = 256, layers: int = 3,
                 state_dim: int = ModelConfig.state_dim, goal_dim: int = ModelConfig.goal_dim,
                 action_dim: int = ACTION_DIM):
        super().__init__()
        if not BASE_CHANNELS <= map_channels <= len(PATCH_CHANNELS):
            raise ValueError(f"map_channels must be in [{BASE_CHANNELS}, {len(PATCH_CHANNELS)}], got {map_channels}")
        if map_channels > BASE_CHANNELS and not map_safe_distance:
            raise ValueError(f"{map_channels} map channels read the safe distance: map_safe_distance must be true")
        if state_dim < 2 or goal_dim < 2 or min(hidden, layers, map_embedding, encoder_width, action_dim) < 1:
            raise ValueError("state_dim and goal_dim must be >= 2 (a position first), the other sizes >= 1")
        self.sizes = dict(map_channels=int(map_channels), map_patch_cells=int(map_patch_cells),
                          map_patch_m=float(map_patch_m), map_safe_distance=bool(map_safe_distance),
                          map_embedding=int(map_embedding), encoder_width=int(encoder_width), hidden=int(hidden),
                          layers=int(layers), state_dim=int(state_dim), goal_dim=int(goal_dim), action_dim=int(action_dim))
        self.map_channels, self.map_patch_cells, self.map_patch_m = map_channels, map_patch_cells, map_patch_m
        self.map_safe_distance, self.state_dim, self.goal_dim = map_safe_distance, state_dim, goal_dim
        self.hidden, self.layers, self.action_dim = hidden, layers, action_dim
        features = len(feature_names(state_dim, goal_dim))
        self.map_encoder = MapEncoder(map_channels, map_patch_cells, map_embedding, encoder_width)
        self.net = action_mlp(features + map_embedding, hidden, layers, action_dim)
        # Fitted on the dataset; saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.register_buffer("action_low", -torch.ones(action_dim))
        self.register_buffer("action_high", torch.ones(action_dim))

    @classmethod
    def for_model(cls, model: ModelConfig, **sizes) -> "MapBehaviourCloningPolicy":
        """A policy reading the map as a map-conditioned diffusion model of `model` does."""
        if not model.map_conditioned:
            raise ValueError("the model config is not map-conditioned (model.map_patch_cells = 0): it gives no map input")
        return cls(model.map_channels, model.map_patch_cells, model.map_patch_m, model.map_safe_distance,
                   model.map_embedding, state_dim=model.state_dim, goal_dim=model.goal_dim, **sizes)

    @property
    def device(self) -> torch.device:
        return self.feature_mean.device

    def features(self, states: Tensor, goals: Tensor) -> Tensor:
        """states [B, >= state_dim], goals [B, goal_dim] (world frame) -> [B, F]: the state less its position, the
        goal relative to the robot (FEATURE_NAMES)."""
        return torch.cat([states[:, 2:self.state_dim], relative_goal(goals[:, :self.goal_dim], states)], -1)

    def fit_normalization(self, features: Tensor, actions: Tensor) -> None:
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp(min=1e-3))
        self.action_low.copy_(actions.min(0).values)
        self.action_high.copy_(torch.maximum(actions.max(0).values, self.action_low + 1e-3))

    def normalized_action(self, features: Tensor, patches: Tensor) -> Tensor:
        """features [B, F], patches [B, >= map_channels, P, P] -> action [B, A] in [-1, 1] units."""
        scaled = (features - self.feature_mean) / self.feature_std
        return self.net(torch.cat([scaled, self.map_encoder(patches)], -1))

    def normalize_action(self, actions: Tensor) -> Tensor:
        return 2 * (actions - self.action_low) / (self.action_high - self.action_low) - 1

    def unnormalize_action(self, unit: Tensor) -> Tensor:
        return self.action_low + (unit + 1) / 2 * (self.action_high - self.action_low)

    def patches(self, observations: Tensor, map_input: PlanningMap) -> Tensor:
        """The patches [B, map_channels, P, P] around the robots of observations [B, state_dim + goal_dim]."""
        if map_input.safe_distance != self.map_safe_distance:
            raise ValueError(f"map_input has safe_distance={map_input.safe_distance}, this policy was trained with "
                             f"{self.map_safe_distance}: build it with PlanningMap.from_grids(..., safe_distance="
                             f"{self.map_safe_distance})")
        goals = observations[:, self.state_dim:self.state_dim + 2]
        return map_input.to(self.device).patches(observations[:, :2], goals, self.map_patch_cells, self.map_patch_m,
                                                  channels=self.map_channels)

    def forward(self, observations: Tensor, map_input: PlanningMap) -> Tensor:
        """obs [B, state_dim + goal_dim] on the map `map_input` -> action [B, A] in world units."""
        states, goals = observations[:, :self.state_dim], observations[:, self.state_dim:self.state_dim + self.goal_dim]
        unit = self.normalized_action(self.features(states, goals), self.patches(observations, map_input))
        return self.unnormalize_action(unit)

    @torch.no_grad()
    def act(self, observations: np.ndarray, map_input: PlanningMap) -> np.ndarray:
        """One batched forward for every robot on the map: obs [B, D] -> actions [B, A] (numpy, float32)."""
        obs = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=self.device).reshape(
            -1, self.state_dim + self.goal_dim)
        return self(obs, map_input).cpu().numpy()

    def planning_map(self, grid, risk_grid, severity_grid=None, device=None) -> PlanningMap:
        """The map input of a costmap, its risk layer and the layer's severity (grids with .data, .resolution,
        .origin_x, .origin_y), built as the controller builds a map-conditioned planner's and with the map settings
        this policy reads."""
        return PlanningMap.from_grids(grid, risk_grid, device=device or self.device, safe_distance=self.map_safe_distance,
                                      severity_grid=severity_grid)


def feature_names(state_dim: int = ModelConfig.state_dim, goal_dim: int = ModelConfig.goal_dim) -> tuple[str, ...]:
    """The robot's state [x, y, sin_yaw, cos_yaw, v, omega] less x, y; the goal relative to the robot."""
    state = ("sin_yaw", "cos_yaw", "v", "omega") if state_dim == 6 else tuple(f"state_{i}" for i in range(2, state_dim))
    return state + ("goal_dx", "goal_dy") + tuple(f"goal_{i}" for i in range(2, goal_dim))


FEATURE_NAMES = feature_names()


def training_set(episodes, maps: dict, model: ModelConfig, device="cpu",
                 source: str = "dataset") -> tuple[WindowDataset, TrainingMaps]:
    """Every transition of `episodes` (each naming its map in `layout`) and the maps' layers and per-episode goal
    distance fields on `device`, as the diffusion training builds them. maps: {name: (occupancy grid, hazard grid)}
    (core/training/train.load_dataset_maps)."""
    if not maps:
        raise BehaviourCloningError(f"{source}: no maps; map-conditioned behaviour cloning trains on a dataset collected "
                                    f"over maps (python -m risky_nav.collect --generate N ...: layouts/ beside the data)")
    names = sorted(maps)
    try:  # horizon 1: a "window" is one transition
        data = WindowDataset.from_episodes(episodes, 1, 1.0, source=source, map_names=names,
                                           state_dim=model.state_dim, goal_dim=model.goal_dim)
    except ValueError as e:
        raise BehaviourCloningError(str(e)) from e
    data = data.to(device)
    return data, TrainingMaps.from_grids([maps[n] for n in names], data.episode_map, data.episode_goal, model,
                                         device=device)


def train(episodes, maps: dict, model: ModelConfig, *, steps: int = 20_000, batch_size: int = 512, lr: float = 1e-3,
          hidden: int = 256, layers: int = 3, seed: int = 0, device: str = "cpu", deadline_s: float = 0.0,
          log_every: int = 1000, log=print, source: str = "dataset") -> tuple[MapBehaviourCloningPolicy, list, dict]:
    """(policy on the CPU, [(step, loss)], {"transitions", "maps", "episodes", "fields_s"}). deadline_s > 0: stop that
    many seconds after this call began (the maps' goal distance fields included) and return what was learned."""
    started = time.perf_counter()
    dev = resolve_device(device)
    data, training_maps = training_set(episodes, maps, model, dev, source)
    fields_s = time.perf_counter() - started
    if log:
        log(f"[bc-map] {source}: {len(data.episode_map)} episodes on {len(maps)} maps, {len(data)} transitions; "
            f"goal distance fields in {fields_s:.1f} s")
    torch.manual_seed(seed)
    policy = MapBehaviourCloningPolicy.for_model(model, hidden=hidden, layers=layers)
    starts = data.starts
    policy.fit_normalization(policy.features(data.states[starts], data.goals[starts]).cpu(),
                             data.transition_actions().cpu())
    policy.to(dev).train()

    def loss_of(rows: Tensor) -> Tensor:
        batch = data.batch(rows)  # the state, goal and action of each transition, and its episode
        patches = training_maps.patches(batch["state"][:, :2], batch["episode"])
        predicted = policy.normalized_action(policy.features(batch["state"], batch["goal"]), patches)
        return ((predicted - policy.normalize_action(batch["action"])) ** 2).mean()

    history = fit(policy, loss_of, len(data), steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=dev,
                  deadline_s=remaining_s(deadline_s, started), log_every=log_every, log=log, tag="bc-map")
    info = {"transitions": len(data), "maps": len(maps), "episodes": len(data.episode_map), "fields_s": round(fields_s, 2)}
    return policy.cpu().eval(), history, info


def save(policy: MapBehaviourCloningPolicy, path: str | Path, extra: dict | None = None) -> Path:
    """One safetensors file: weights and normalisers as tensors; sizes (map settings included) and the run in metadata."""
    return save_policy(policy, path, MAP_FORMAT, {"sizes": policy.sizes, "features": list(feature_names(
        policy.state_dim, policy.goal_dim)), **(extra or {})})


def policy_from_file(path: Path, metadata: dict[str, str], tensors: dict[str, Tensor]) -> MapBehaviourCloningPolicy:
    """The policy of a MAP_FORMAT file's contents (behaviour_cloning.load reads the file and calls this)."""
    try:
        sizes = json.loads(metadata["sizes"])
        policy = MapBehaviourCloningPolicy(**sizes)
    except KeyError as e:
        raise BehaviourCloningError(f"{path}: metadata field {e} is missing") from e
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise BehaviourCloningError(f"{path}: metadata field 'sizes' does not describe a map-conditioned "
                                    f"behaviour-cloning policy ({e})") from e
    return load_weights(policy, tensors, path, BehaviourCloningError)


def main_map_conditioned(args, out: Path, device: torch.device, started: float) -> int:
    """behaviour_cloning.main with --map-conditioned: train on a maps dataset and write `out`."""
    from rs_diffuser_ros.core.training.train import DEFAULT_CONFIG, load_dataset_episodes, load_dataset_maps

    config_path = args.config or str(DEFAULT_CONFIG)
    try:
        model = CoreConfig.from_yaml(config_path).validate(config_path).model
    except ConfigError as e:
        raise SystemExit(f"config error: {e}")
    if not model.map_conditioned:
        raise SystemExit(f"{config_path}: model.map_patch_cells is 0; --map-conditioned needs the map input's settings")
    episodes = load_dataset_episodes(args.dataset)
    maps = load_dataset_maps(args.dataset)
    t0 = time.perf_counter()
    try:
        policy, history, info = train(episodes, maps, model, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                      hidden=args.hidden, layers=args.layers, seed=args.seed, device=device,
                                      deadline_s=remaining_s(args.deadline_s, started), log_every=args.log_every,
                                      source=str(args.dataset))
    except BehaviourCloningError as e:
        raise SystemExit(str(e))
    wall = time.perf_counter() - t0
    save(policy, out, extra={"dataset": str(args.dataset), "config": config_path, "steps": history[-1][0],
                             "seed": args.seed, "batch_size": args.batch_size, "lr": args.lr,
                             "final_loss": round(history[-1][1], 6), "device": str(device), "wall_s": round(wall, 1),
                             **info})
    write_losses(out, history, wall)
    return 0
