"""Model, planner and training hyper-parameters: one typed tree, read from config/model.yaml.

The whole tree is stored inside every checkpoint (as JSON), so a checkpoint rebuilds the
exact networks it was trained with. The `planner` section may be overridden at load time
(candidates, DDIM steps, guidance scale are inference-time choices).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .map_input import (BASE_CHANNELS, PATCH_CHANNELS, ROUTE_CHANNELS, ROUTE_RISK_CHANNELS, SAFE_CHANNELS,
                        SAFE_DETOUR_WEIGHT)
from .risk import RISK_MODES
from .setting_spec import check_fields, setting

ACTION_DIM = 2  # the robot's [v, omega]; the point mass's [dx, dy]
# The control period the models' training data were recorded at (risky_nav's CONTROL_PERIOD; a test holds them equal):
# a model's plan holds one state every model.plan_stride of them.
DATA_PERIOD_S = 0.1


CRITIC_KINDS = ("flat", "per_step")


class ConfigError(ValueError):
    """A config file or dict has a missing, unknown or out-of-range field."""


@dataclass
class ModelConfig:
    # The task's layout: a dataset's observations are [state, goal], and the first two numbers of both are
    # a position [x, y] (plans are denoised relative to the start's, plan_frame.py). The defaults are the
    # navigation robot's state [x, y, sin_yaw, cos_yaw, v, omega] and goal [goal_x, goal_y] (what checkpoints
    # written before these fields existed hold); Risky PointMass has state [x, y], goal [goal_x, goal_y].
    state_dim: int = 6
    goal_dim: int = 2
    horizon: int = 32  # states per plan window, the first being the current state
    # Control periods between consecutive plan states: 1 = a plan state every 0.1 s (3.1 s ahead at horizon 32);
    # 2 = every 0.2 s, so the same 32 states reach 6.2 s, far enough to see a risky region from where the routes
    # part (docs/method_choices.md, "A longer plan: the plan stride"). The inverse dynamics then reads the state
    # one plan step (stride control periods) ahead.
    plan_stride: int = 1
    unet_dim: int = 16  # channels of the first U-Net level
    unet_dim_mults: tuple[int, ...] = (1, 2)
    diffusion_steps: int = 100  # DDPM training steps (the DDIM sampler uses a subset)
    n_quantiles: int = 32
    critic_hidden: int = 256
    idm_hidden: int = 128
    # Map conditioning (core/map_input.py): 0 = a per-map model that knows its map through absolute
    # coordinates; > 0 = an egocentric patch of that many cells a side, map_patch_m metres wide, encoded
    # into map_embedding numbers (docs/method_choices.md, "Map conditioning").
    map_patch_cells: int = 0
    map_patch_m: float = 6.4
    map_embedding: int = 64
    map_safe_distance: bool = False  # a fifth patch channel: the goal distance that avoids risk where it can
    map_route_channels: bool = False  # two more (needs the fifth): route length and detour length, in metres
    map_route_risk: bool = False  # one more (needs the route channels): the hazard along the plain route to the goal
    # Two more (needs the route risk): the risk layer's severity (one event's size) here and the largest along the plain
    # route to the goal. The hazard (p x C) sets a crossing's mean, the severity its tail (map_input.py).
    map_severity: bool = False
    # The goal distance's cells: those whose centre keeps this many metres from walls (map_input.PASSABLE_CLEARANCE_M,
    # the robot's radius and the check's margin, for models from f1 on); 0 = the one-cell rule every earlier model
    # was trained with (a checkpoint without the field reads it, so what it reads stays what it learnt on).
    map_passable_clearance_m: float = 0.0
    # The denoiser also reads a route label: 1 if the window's episode goes on into a risky region, 0 if it stays out;
    # the planner asks half its candidates for each and the critic (which never reads the label) chooses
    # (docs/method_choices.md, "A route label for the proposals"). Needs a map-conditioned model.
    route_label: bool = False
    # The map critic's reading of a window (models/): "flat" = one MLP on the flattened window (critic.py),
    # "per_step" = one small network per state, pooled (per_step_critic.py); and whether its context holds
    # the map embedding or the relative goal alone (it still reads every map channel along the window).
    critic_kind: str = "flat"
    critic_reads_map_embedding: bool = True
    # The denoiser also reads the patch's channels at each state of the window it denoises (as the critic does),
    # not only the map embedding: one 64-number vector cannot say where a 0.4 m block lies, and plans ran through
    # such blocks (docs/method_choices.md, "The denoiser reads the map along its plan"). Needs a map model.
    denoiser_reads_map: bool = False
    # The critic also reads the route label of the plan it scores: 1 if the plan's episode goes on into a risky region
    # after the window's last state, 0 if it stays out. The return beyond a window depends on the way taken from its
    # end, which a window before the routes part does not show; a critic without it charged the way round with the
    # short cut's risk (docs/method_choices.md, "A critic that reads where the plan goes on"). The planner gives each
    # candidate its own label (route candidates: their way's). Needs the route label and the per-step critic.
    critic_reads_continuation: bool = False
    # The critic's N outputs are the mean return of each 1/N of the distribution (tail means: CVaR_k/N exact), trained
    # against Rockafellar-Uryasev targets, with N - 1 more outputs for the boundary quantiles those need; false: midpoint
    # quantiles and the quantile-Huber loss. Midpoint quantiles learned a rare, large loss slowly and stopped short of it
    # (models/critic_head.py; docs/method_choices.md, "Tail means").
    critic_tail_means: bool = False

    @property
    def context_dim(self) -> int:
        """Conditioning of denoiser and critic: the goal relative to the start, then the absolute start
        position (a per-map model) or the map embedding (conditioning.py)."""
        return self.goal_dim + (self.map_embedding if self.map_conditioned else 2)

    @property
    def denoiser_context_dim(self) -> int:
        """The denoiser's context: the shared one, and the route label where the model has one."""
        return self.context_dim + int(self.route_label)

    @property
    def critic_context_dim(self) -> int:
        """The critic's context: the shared one, and the continuation label where the model's critic reads it."""
        return self.context_dim + int(self.critic_reads_continuation)

    @property
    def map_channels(self) -> int:
        """The first this many of map_input.PATCH_CHANNELS are what the model reads."""
        if self.map_severity:
            return len(PATCH_CHANNELS)
        if self.map_route_risk:
            return ROUTE_RISK_CHANNELS
        if self.map_route_channels:
            return ROUTE_CHANNELS
        return SAFE_CHANNELS if self.map_safe_distance else BASE_CHANNELS

    @property
    def map_conditioned(self) -> bool:
        return self.map_patch_cells > 0

    def validate(self, where: str) -> None:
        _positive(self, where, "state_dim", "goal_dim", "horizon", "plan_stride", "unet_dim", "diffusion_steps",
                  "n_quantiles", "critic_hidden", "idm_hidden", "map_embedding")
        for name in ("state_dim", "goal_dim"):
            if getattr(self, name) < 2:
                raise ConfigError(f"{where}: model.{name} must be >= 2 (its first two numbers are a position [x, y]), "
                                  f"got {getattr(self, name)}")
        if self.map_patch_cells < 0 or self.map_patch_cells % 8:
            raise ConfigError(f"{where}: model.map_patch_cells must be 0 (no map) or a positive multiple of 8, "
                              f"got {self.map_patch_cells}")
        if not 0.0 <= self.map_passable_clearance_m <= 1.0:
            raise ConfigError(f"{where}: model.map_passable_clearance_m must be in [0, 1] m (0: the one-cell rule), "
                              f"got {self.map_passable_clearance_m}")
        if not self.map_patch_m > 0:
            raise ConfigError(f"{where}: model.map_patch_m must be > 0, got {self.map_patch_m}")
        if self.critic_kind not in CRITIC_KINDS:
            raise ConfigError(f"{where}: model.critic_kind must be one of {list(CRITIC_KINDS)}, got {self.critic_kind!r}")
        if not self.map_conditioned and (self.critic_kind != "flat" or not self.critic_reads_map_embedding):
            raise ConfigError(f"{where}: model.critic_kind {self.critic_kind!r} and critic_reads_map_embedding "
                              f"{self.critic_reads_map_embedding} need a map-conditioned model (map_patch_cells > 0)")
        if not self.critic_reads_map_embedding and self.critic_kind != "per_step":
            raise ConfigError(f"{where}: model.critic_reads_map_embedding: false is built for critic_kind per_step only")
        if self.route_label and not self.map_conditioned:
            raise ConfigError(f"{where}: model.route_label needs a map-conditioned model (map_patch_cells > 0): the "
                              "label says whether a plan goes into the map's risky regions")
        if self.critic_reads_continuation and not (self.route_label and self.critic_kind == "per_step"):
            raise ConfigError(f"{where}: model.critic_reads_continuation needs model.route_label: true (the planner labels "
                              "its candidates by the denoiser's label) and critic_kind per_step")
        if self.denoiser_reads_map and not self.map_conditioned:
            raise ConfigError(f"{where}: model.denoiser_reads_map needs a map-conditioned model (map_patch_cells > 0): "
                              "it reads the map patch along the plan")
        if self.map_route_risk and not self.map_route_channels:
            raise ConfigError(f"{where}: model.map_route_risk needs model.map_route_channels: true (it is the eighth "
                              "channel, after the route channels)")
        if self.map_severity and not self.map_route_risk:
            raise ConfigError(f"{where}: model.map_severity needs model.map_route_risk: true (its channels are the ninth "
                              "and tenth, after the route risk)")
        if self.map_route_channels and not self.map_safe_distance:
            raise ConfigError(f"{where}: model.map_route_channels needs model.map_safe_distance: true (the detour "
                              "channel is the safe distance minus the plain one)")
        levels = len(self.unet_dim_mults)
        if levels < 1 or any(int(m) < 1 for m in self.unet_dim_mults):
            raise ConfigError(f"{where}: model.unet_dim_mults must be a non-empty list of positive ints")
        if self.horizon % 2 ** (levels - 1) != 0:
            raise ConfigError(
                f"{where}: model.horizon={self.horizon} must be divisible by 2**(len(unet_dim_mults)-1)"
                f"={2 ** (levels - 1)} (the U-Net halves it at each level)")


@dataclass
class PlannerConfig:
    """Inference-time choices. Each field's range and help live on it (setting_spec): the ROS
    parameters, the controller's settings and the evaluation's options derive from them."""

    candidates: int = setting(32, "Candidate plans sampled per replan; the best by rho_alpha is executed.", low=1, high=1024)
    ddim_steps: int = setting(4, "Denoising steps per replan (at most the model's diffusion steps).", low=1, high=1000)
    ddim_eta: float = setting(0.0, "0: deterministic DDIM; 1: DDPM-like stochastic steps.", low=0.0, high=1.0)
    guidance_scale: float = setting(1.0, "Step size of the risk-gradient guidance during denoising (normalised "
                                    "units); 0 = unguided.", low=0.0, high=1000.0)
    guidance_grad_clip: float = setting(1.0, "Max RMS (per plan element) of the guidance gradient.", low=0.0, high=1e6)
    guidance_on: str = setting("noisy", "noisy: critic(x_t, noise level); x0: critic(denoiser's x0 estimate).",
                               choices=("noisy", "x0"))
    costmap_weight: float = setting(2.0, "Weight of the mean costmap cost along the plan (normalised return units).",
                                    low=0.0, high=1e6)
    alpha: float = setting(0.1, "Risk level in (0, 1]: CVaR_alpha of the predicted return distribution guides and "
                           "picks the plan; 1.0 is risk-neutral (the mean).", low=0.0, low_open=True, high=1.0)
    risk_mode: str = setting("averse", "averse: lower tail (CVaR_alpha); seeking: upper tail. alpha = 1 is neutral "
                             "in both.", choices=RISK_MODES)
    seed: int = setting(0, "Seed of the planner's own noise stream.", low=0, high=2**63 - 1)
    route_candidates: int = setting(0, "Candidates per replan, per way, whose positions follow a route follower's "
                                    "rollout on the map (core/route_candidates.py): n along the way round risk and n along "
                                    "the shortest way; the rest of each is denoised as usual and the critic scores them "
                                    "with the others. 0 = none. Needs a map model with the safe distance channel.",
                                    low=0, high=512)
    route_risk_margin_m: float = setting(0.2, "How far the route candidates' way round keeps off risky regions where it "
                                         f"can, m: a metre nearer costs {SAFE_DETOUR_WEIGHT:g} times one in the open (core/map_input.py "
                                         "route_distance). 0.4 clipped fewer corners on fresh maps, not on the test "
                                         "maps (docs/method_choices.md, 'Route candidates off the regions' corners').",
                                         low=0.0, high=2.0)

    def validate(self, where: str) -> None:
        reason = check_fields(self)
        if reason:
            raise ConfigError(f"{where}: planner.{reason}")


@dataclass
class TrainingConfig:
    steps: int = 50_000
    batch_size: int = 256
    lr: float = 2e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    ema_start: int = 1000  # copy weights into EMA before this step (Diffuser's step_start_ema)
    gamma: float = 1.0  # discount of the Monte-Carlo return the critic learns (undiscounted: see docs/method_choices.md)
    critic_clean_fraction: float = 0.25  # share of critic samples seen at noise level 0
    huber_kappa: float = 1.0
    # Re-draw each sampled window's risk events from its recorded path's exposure (training/risk_relabel.py): the
    # critic then learns a map's tail from p and C, not from which few crossings happened to meet an event.
    relabel_risk_events: bool = False
    # Draws of each sampled window's events per batch (needs relabel_risk_events above 1): the quantile loss reads
    # all of them. A crossing meets an event in 12-25 % of draws, so with one draw a map's tail quantiles learn from a
    # few windows a batch; a critic trained so predicted the tail too light in proportion to the event's size, on its
    # own training maps too (docs/method_choices.md, "The event's size").
    relabel_draws: int = 1
    # The critic (and its return scale) learns from the windows of episodes that reached their goal only. One that did
    # not is the scripted driver pinned on a wall until the time limit: returns to -760 (d26: about 1 % of windows), a
    # failure the controller's collision check rules out. They set the return scale's std to 10.7 where the rest
    # spread 3-4, and a tail-means critic, pulled by an error's size, learned walls as that outcome
    # (docs/method_choices.md, "Tail means").
    critic_on_arrived: bool = False
    log_every: int = 100
    checkpoint_every: int = 5000

    def validate(self, where: str) -> None:
        _positive(self, where, "steps", "batch_size", "log_every", "checkpoint_every", "relabel_draws")
        if self.relabel_draws > 1 and not self.relabel_risk_events:
            raise ConfigError(f"{where}: training.relabel_draws {self.relabel_draws} draws a window's risk events again: "
                              "it needs training.relabel_risk_events: true")
        for name, lo, hi in (("ema_decay", 0.0, 1.0), ("gamma", 0.0, 1.0), ("critic_clean_fraction", 0.0, 1.0)):
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ConfigError(f"{where}: training.{name} must be in [{lo}, {hi}], got {v}")
        for name in ("lr", "huber_kappa"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{where}: training.{name} must be > 0, got {getattr(self, name)}")


@dataclass
class CoreConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def validate(self, where: str = "config") -> "CoreConfig":
        self.model.validate(where)
        self.planner.validate(where)
        self.training.validate(where)
        reason = route_candidates_problem(self.model, self.planner)
        if reason:
            raise ConfigError(f"{where}: planner.{reason}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> "CoreConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping with sections model/planner/training, got {type(data).__name__}")
        unknown = set(data) - {"model", "planner", "training"}
        if unknown:
            raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)} (known: model, planner, training)")
        cfg = cls(
            model=_section(ModelConfig, data.get("model", {}), where, "model"),
            planner=_section(PlannerConfig, data.get("planner", {}), where, "planner"),
            training=_section(TrainingConfig, data.get("training", {}), where, "training"),
        )
        return cfg.validate(where)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "CoreConfig":
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config ({e.strerror})") from e
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
        return cls.from_dict(data, where=str(path))


def route_candidates_problem(model: ModelConfig, planner: PlannerConfig) -> str | None:
    """Why this model cannot plan with these route candidates (core/route_candidates.py), or None: they follow ways on
    the map, found with the safe distance, and are driven with the robot's state [x, y, sin, cos, v, omega]."""
    if planner.route_candidates > 0 and not (model.map_conditioned and model.map_safe_distance and model.state_dim == 6):
        return (f"route_candidates={planner.route_candidates} needs a map-conditioned robot model (state [x, y, sin, "
                "cos, v, omega]) with the safe distance channel (model.map_safe_distance): its route candidates follow "
                "the way round risk on the map; set it to 0")
    return None


def _section(kind, values: Any, where: str, name: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: section '{name}' must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(kind)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(f'{name}.{u}' for u in unknown)}")
    out = {}
    defaults = kind()
    for key, value in values.items():
        default = getattr(defaults, key)
        try:
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TypeError
                out[key] = value
            elif isinstance(default, tuple):
                out[key] = tuple(int(v) for v in value)
            elif isinstance(default, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise TypeError
                if isinstance(default, int) and not float(value).is_integer():
                    raise TypeError
                out[key] = type(default)(value)
            else:
                if not isinstance(value, str):
                    raise TypeError
                out[key] = value
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: field {name}.{key} must be {type(default).__name__}, got {value!r}") from None
    return kind(**out)


def _positive(obj, where: str, *names: str) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (isinstance(v, int) and v > 0):
            section = {ModelConfig: "model", PlannerConfig: "planner", TrainingConfig: "training"}[type(obj)]
            raise ConfigError(f"{where}: {section}.{name} must be a positive int, got {v!r}")
