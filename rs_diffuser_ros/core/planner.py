"""RiskSensitivePlanner: the one API everything else (ROS nodes, evaluation) calls.

One replan: K candidate windows of H states are sampled in one batch by guided DDIM (the
current state inpainted, the goal and the position on the map as condition; windows live in
the plan frame, relative to the current position, and come back in world coordinates), the critic scores each clean candidate,
the best by rho_alpha (minus the costmap cost when a costmap is given) is kept, and the
inverse dynamics decodes its first action. `plan_batch` does B states at once (B*K rows).
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import load_weights, read_checkpoint
from .conditioning import MapView, model_context
from .config import DATA_PERIOD_S, CoreConfig, route_candidates_problem
from .costmap import Costmap
from .map_input import PlanningMap, cut_patches
from .sampling.cuda_graph import CapturedProgram
from .device import resolve_device
from .models.map_encoder import NoMapEncoder
from .models.networks import NETWORK_NAMES, build_networks
from .normalizer import Normalizers
from .objective import CostmapTerm, PlanObjective, RiskTerm
from .plan_frame import start_in_plan_frame, to_world
from .risk import check_alpha, check_risk_mode
from .risk_read import MapRiskRead
from .route_candidates import GOAL_SLOWDOWN, LOOKAHEAD_M, ROUTE_MAX_ACCEL, ROUTE_MAX_ALPHA, follow_route, walk_route
from .sampling import critic_gradient
from .sampling.guidance import RiskGuidance
from .sampling.noise import draw_noise
from .sampling.sampler import Inpainting, ddim_loop, fast_steps, reference_steps
from .schedule import DiffusionSchedule


@dataclass
class PlanResult:
    action: np.ndarray  # [2] to execute now: the robot's (v, omega), the point mass's (dx, dy)
    plan: np.ndarray  # [H, D] chosen state window (D = model.state_dim), plan[0] = the given state
    candidates: np.ndarray  # [K, H, D] all sampled windows
    risk_values: np.ndarray  # [K] rho_alpha of each candidate's return distribution (return units)
    quantiles: np.ndarray  # [N] return quantiles of the chosen plan (ascending)
    chosen_index: int
    expected_return: float  # mean of the chosen plan's quantiles
    scores: np.ndarray  # [K] the plan objective selection maximised (risk term minus costmap term, normalised units)
    candidate_actions: np.ndarray  # [K, 2] the inverse dynamics' first action of every candidate
    latency_ms: float  # wall time of the whole plan / plan_batch call
    admissible: np.ndarray | None = None  # [K] what plan_batch's `admissible` allowed (None: no restriction)
    best_scoring: int = 0  # the candidate the objective alone would pick (chosen_index differs when it was not admissible)


class RiskSensitivePlanner:
    def __init__(self, config: CoreConfig, networks: dict[str, nn.Module], normalizers: Normalizers,
                 device: str | torch.device = "auto"):
        self.config = config.validate()
        # The sampling settings as loaded (the checkpoint's; from_checkpoint's overrides too): what a controller's
        # "the model's own" sentinels stand for. configure() leaves it alone, so a controller made after another
        # one reconfigured this planner (an evaluation's settings share one) still gets the model's own.
        self.own_planner_config = self.config.planner
        self.device = resolve_device(device)
        networks = {"map_encoder": NoMapEncoder(), **networks}  # a per-map model may come without the (empty) slot
        self.networks = {name: networks[name].to(self.device).eval().requires_grad_(False) for name in NETWORK_NAMES}
        self.denoiser = self.networks["denoiser"]
        self.critic = self.networks["critic"]
        self.inverse_dynamics = self.networks["inverse_dynamics"]
        self.map_encoder = self.networks["map_encoder"]
        self.normalizers = normalizers.to(self.device)
        # The route follower's top speed and turn rate: the data's (the plan normaliser's v and omega range), read on
        # the host once, so that the replan program never waits for the device.
        high = normalizers.plan.high.tolist()
        self._route_speed = (high[4], high[5]) if len(high) >= 6 else (0.0, 0.0)
        self._generator = torch.Generator(self.device).manual_seed(config.planner.seed)
        self._graphs = {}
        self._compiled = None  # (backend, the replan program through torch.compile), made on first use
        self.set_execution()
        self.schedule = self._schedule_for(self.config.planner)
        self._check_route_candidates(self.config.planner)

    def _check_route_candidates(self, p) -> None:
        reason = route_candidates_problem(self.config.model, p)
        if reason:
            raise ValueError(reason)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: CoreConfig | str | Path | None = None, device="auto", seed: int = 0,
                    **planner_overrides) -> "RiskSensitivePlanner":
        """Randomly initialised networks (seeded) with default world limits: for wiring and tests, not driving.
        planner_overrides as from_checkpoint's."""
        if not isinstance(config, CoreConfig):
            config = CoreConfig() if config is None else CoreConfig.from_yaml(config)
        with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
            torch.manual_seed(seed)
            networks = build_networks(config.model)
        planner = cls(config, networks, Normalizers.untrained_defaults(config.model), device)
        planner._own(planner_overrides)
        return planner

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="auto", **planner_overrides) -> "RiskSensitivePlanner":
        config, normalizers, state_dicts, _ = read_checkpoint(path)
        networks = build_networks(config.model)
        for name in NETWORK_NAMES:
            load_weights(networks[name], state_dicts[name], path, name)
        planner = cls(config, networks, normalizers, device)
        planner._own(planner_overrides)
        return planner

    def _own(self, planner_overrides: dict) -> None:
        """Loading with overrides: they are part of what this planner was loaded as (own_planner_config)."""
        if planner_overrides:
            self.configure(**planner_overrides)
            self.own_planner_config = self.config.planner

    def configure(self, **planner_fields) -> None:
        """Change inference-time settings (candidates, ddim_steps, guidance_scale, ...), validated."""
        unknown = set(planner_fields) - {f.name for f in dataclasses.fields(self.config.planner)}
        if unknown:
            raise ValueError(f"unknown planner setting(s) {sorted(unknown)}")
        updated = dataclasses.replace(self.config.planner, **planner_fields)
        updated.validate("planner settings")
        self._check_route_candidates(updated)
        schedule = self._schedule_for(updated)  # may refuse too (more DDIM steps than the model has)
        # Only now, with everything checked, does anything change: a refused call leaves all as it was.
        self.config.planner, self.schedule, self._graphs = updated, schedule, {}

    def _schedule_for(self, p) -> DiffusionSchedule:
        return DiffusionSchedule(self.config.model.diffusion_steps, p.ddim_steps, p.ddim_eta, self.device)

    @property
    def horizon(self) -> int:
        return self.config.model.horizon

    @property
    def state_dim(self) -> int:
        return self.config.model.state_dim

    @property
    def goal_dim(self) -> int:
        return self.config.model.goal_dim

    @property
    def n_quantiles(self) -> int:
        return self.config.model.n_quantiles

    @property
    def map_conditioned(self) -> bool:
        """True: plans need a `map_input` (a PlanningMap); the model knows no map by itself."""
        return self.config.model.map_conditioned

    # --- planning -----------------------------------------------------------------------
    def plan(self, state, goal, alpha: float | None = None, risk_mode: str | None = None,
             costmap: Costmap | None = None, seed: int | None = None, map_input: PlanningMap | None = None) -> PlanResult:
        state = _as_array(state, (self.state_dim,), "state", f"[{self.state_dim}] (model.state_dim, x and y first)")
        goal = _as_array(goal, (self.goal_dim,), "goal", f"[{self.goal_dim}] (model.goal_dim, goal x and y first)")
        return self.plan_batch(state[None], goal[None], alpha, risk_mode, costmap, seed, map_input=map_input)[0]

    @torch.no_grad()
    def plan_batch(self, states, goals, alpha=None, risk_mode: str | None = None,
                   costmap: Costmap | None = None, seed: int | None = None, candidates: int | None = None,
                   admissible: Callable[[Tensor, Tensor], Tensor] | None = None,
                   map_input: PlanningMap | None = None, carried: np.ndarray | None = None) -> list[PlanResult]:
        """states [B, D], goals [B, G] (model.state_dim, model.goal_dim); alpha a float or [B] floats; one costmap
        shared by all; `candidates` overrides the configured K for this call (a controller's resampling) without
        touching the config.
        `map_input`: the map (layers and risk) a map-conditioned model plans on, shared by all states;
        required by such a model, refused by a per-map one.

        `admissible(plans [B, K, H, D] in world coordinates, actions [B, K, 2]) -> bool [B, K]` (on the
        planner's device) restricts the choice: each state gets its best-scoring admissible candidate
        (a hard collision check, say), computed where the candidates are, before anything is copied.

        `carried` [B, H, D] (world coordinates, row 0 = the state; a plan with a NaN: none for that state) takes
        the place of each state's last candidate: a plan kept from an earlier replan, scored and checked with
        the fresh ones (commitment over replans, as MPPI's warm start; see `_carry_over`).
        """
        t_start = time.perf_counter()
        p = self.config.planner
        d = self.state_dim
        states = _as_array(states, (None, d), "states", f"[B, {d}]")
        goals = _as_array(goals, (states.shape[0], self.goal_dim), "goals", f"[B, {self.goal_dim}] with B matching states")
        batch, k = states.shape[0], p.candidates if candidates is None else int(candidates)
        if k < 1:
            raise ValueError(f"candidates must be >= 1, got {k}")
        alpha = p.alpha if alpha is None else alpha
        risk_mode = p.risk_mode if risk_mode is None else risk_mode
        alpha_np = np.asarray(alpha, dtype=np.float64)
        if alpha_np.shape not in ((), (1,), (batch,)):
            raise ValueError(f"alpha must be a float or one per state ({batch}), got shape {alpha_np.shape}")
        alpha_np = np.broadcast_to(alpha_np, (batch,)).copy()
        for a in dict.fromkeys(alpha_np.tolist()):  # each distinct value once, in order (not once per state)
            check_alpha(a)
        check_risk_mode(risk_mode)
        if costmap is not None and not isinstance(costmap, Costmap):
            raise TypeError(f"costmap must be a rs_diffuser_ros.core.costmap.Costmap, got {type(costmap).__name__}")
        if self.map_conditioned and not isinstance(map_input, PlanningMap):
            raise ValueError("this model is map-conditioned: plan_batch needs map_input=PlanningMap(...) "
                             f"(the costmap and risk layer it plans on), got {type(map_input).__name__}")
        if self.map_conditioned and map_input.safe_distance != self.config.model.map_safe_distance:
            raise ValueError(f"map_input has safe_distance={map_input.safe_distance}, this model was trained with "
                             f"{self.config.model.map_safe_distance}: build the PlanningMap with the model's setting")
        if self.map_conditioned and map_input.layers.passable_clearance_m != self.config.model.map_passable_clearance_m:
            raise ValueError(f"map_input's goal distance keeps {map_input.layers.passable_clearance_m} m from walls, "
                             f"this model was trained with {self.config.model.map_passable_clearance_m} m: build the "
                             "PlanningMap with the model's model.map_passable_clearance_m")
        if not self.map_conditioned and map_input is not None:
            raise ValueError("this model is a per-map model (model.map_patch_cells = 0): it reads no map_input")
        if carried is not None:
            carried = np.asarray(carried, dtype=np.float32)
            if carried.shape != (states.shape[0], self.horizon, d):
                raise ValueError(f"carried must be [B, H, D] = [{states.shape[0]}, {self.horizon}, {d}] "
                                 f"(one plan, or NaN, per state), got {carried.shape}")

        dev = self.device
        generator = torch.Generator(dev).manual_seed(seed) if seed is not None else self._generator
        asked = batch
        graphs = self.fast_path and self._use_cuda_graphs() and candidates is None  # one-off sizes run eagerly
        if graphs:
            # A graph is captured per batch size: pad up the ladder of `padded_batch_size`, so a batch that
            # shrinks one robot at a time (an evaluation's last episodes) reuses a few graphs instead of
            # capturing one per size. The padding rows repeat the first state; their results are dropped.
            batch = padded_batch_size(batch)
            pad = batch - asked
            states, goals = (np.concatenate([a, np.repeat(a[:1], pad, 0)]) for a in (states, goals))
            alpha_np = np.concatenate([alpha_np, np.repeat(alpha_np[:1], pad)])
            if carried is not None:
                carried = np.concatenate([carried, np.full((pad, *carried.shape[1:]), np.nan, np.float32)])
        inputs = {
            "states": torch.as_tensor(states, device=dev).repeat_interleave(k, 0),
            "goals": torch.as_tensor(goals, device=dev).repeat_interleave(k, 0),
            "alpha_rows": torch.as_tensor(alpha_np, dtype=torch.float32, device=dev).repeat_interleave(k, 0),
        }
        if carried is not None:
            inputs["carried"] = torch.as_tensor(carried, device=dev)
        map_resolution = None
        if map_input is not None:  # the program cuts one patch per state (not per candidate) and encodes it once
            plan_map = map_input.to(dev)
            inputs["map_layers"], inputs["map_origin"] = plan_map.layers.layers, plan_map.layers.origin[0]
            inputs["map_risk_read"] = plan_map.derived("risk_read", MapRiskRead.dilate)
            # The goal distance fields come from the map's cache, found by cells on the host (no sync).
            inputs["map_fields"] = plan_map.fields_for(torch.as_tensor(goals[:, :2]), self.config.model.map_channels)
            map_resolution = plan_map.layers.resolution
            if p.route_candidates > 0:
                inputs["route_next"], inputs["route_step"] = plan_map.route_steps(torch.as_tensor(goals[:, :2]),
                                                                                    p.route_risk_margin_m)
        costmap = costmap.to(dev) if costmap is not None else None
        if self.fast_path:
            inputs["initial_noise"], step_noise = draw_noise(self.schedule, (batch * k, self.horizon, d), dev, generator)
            if step_noise is not None:
                inputs["step_noise"] = step_noise
            out = self._run_fast(inputs, batch, k, risk_mode, costmap, map_resolution, graphs)
        else:
            out = self._replan_program(**inputs, batch=batch, k=k, risk_mode=risk_mode, costmap=costmap,
                                       map_resolution=map_resolution, generator=generator)
        plans, quantiles, risk_values, chosen, actions, scores = (
            out[name] for name in ("plans", "quantiles", "risk_values", "chosen", "actions", "scores"))
        allowed = None
        if admissible is not None:
            allowed = admissible(plans.view(batch, k, self.horizon, d)[:asked], actions.view(batch, k, -1)[:asked])
            best_allowed = torch.where(allowed, scores.view(batch, k)[:asked], -torch.inf).argmax(1)
            chosen = torch.where(allowed.any(1), best_allowed, chosen[:asked])

        # One transfer to the host for everything: each copy of a CUDA tensor waits for the device.
        host = to_host({"plans": plans.view(batch, k, self.horizon, d), "quantiles": quantiles.view(batch, k, -1),
                        "risk": risk_values.view(batch, k), "chosen": chosen, "best": scores.view(batch, k).argmax(1),
                        "actions": actions.view(batch, k, -1), "scores": scores.view(batch, k),
                        **({} if allowed is None else {"allowed": allowed})})
        plans_np, q_np, risk_np, chosen_np, best_np, actions_np, scores_np = (
            host[name] for name in ("plans", "quantiles", "risk", "chosen", "best", "actions", "scores"))
        allowed = host.get("allowed")
        latency_ms = (time.perf_counter() - t_start) * 1e3
        # Every field of every state's result sliced out in a few numpy calls, not ~10 indexings per state
        # (an evaluation builds one result per robot and tick).
        rows, chosen_np = np.arange(asked), chosen_np[:asked]
        chosen_q = q_np[rows, chosen_np]
        return [PlanResult(action, plan, candidates_b, risk, q, c, expected, scores_b, actions_b, latency_ms,
                           allowed_b, best)
                for action, plan, candidates_b, risk, q, c, expected, scores_b, actions_b, allowed_b, best in zip(
                    actions_np[rows, chosen_np], plans_np[rows, chosen_np], plans_np[:asked], risk_np[:asked],
                    chosen_q, chosen_np.tolist(), chosen_q.mean(-1).tolist(), scores_np[:asked], actions_np[:asked],
                    [None] * asked if allowed is None else allowed, best_np[:asked].tolist())]

    # --- the replan as a tensor program (reference and fast path) -------------------------
    def set_execution(self, fast: bool = True, precision: str = "fp32", cuda_graphs: bool = True,
                      compiled: bool | str = False) -> None:
        """How plan_batch computes (the results' meaning is the same; docs/performance.md):
        fast=False is the reference (Python loop, autograd guidance, fp32, no graph) the fast path is
        tested against; precision "bf16"/"fp16" runs the denoiser and the guidance gradient under
        autocast (selection and the IDM stay fp32); cuda_graphs captures the fast replan per shape;
        compiled runs the fast replan through torch.compile (True: inductor's fused kernels; a string: that
        backend), inside the captured graph where there is one. On an H200 it cut a K = 64 replan from 4.44 to
        2.48 ms; the first replan of each shape compiles (18 s there with a warm cache; ~100 s on a 2-core CPU,
        where a K = 32 replan then takes 26.5 ms instead of 34.2)."""
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)}, got {precision!r}")
        if precision != "fp32" and not fast:
            raise ValueError("reduced precision is a fast-path option; the reference path is fp32 by definition")
        if compiled and not fast:
            raise ValueError("compiled is a fast-path option; the reference path runs eagerly by definition")
        if not isinstance(compiled, (bool, str)):
            raise TypeError(f"compiled must be a bool or a torch.compile backend name, got {type(compiled).__name__}")
        # Captured graphs are keyed by precision and backend and stay valid: switching back and forth costs nothing.
        self.fast_path, self.precision, self.cuda_graphs = bool(fast), precision, bool(cuda_graphs)
        self.compile_backend = ("inductor" if compiled is True else compiled) or None

    def _program(self):
        """The replan program the fast path runs: `_replan_program`, or it through torch.compile (set_execution)."""
        if self.compile_backend is None:
            return self._replan_program
        if self._compiled is None or self._compiled[0] != self.compile_backend:
            # dynamic=False: one specialisation per shape, as the graphs are captured per shape.
            self._compiled = (self.compile_backend,
                              torch.compile(self._replan_program, dynamic=False, backend=self.compile_backend))
        return self._compiled[1]

    def _replan_program(self, states, goals, alpha_rows, initial_noise=None, step_noise=None, map_layers=None,
                        map_origin=None, map_fields=None, map_risk_read=None, route_next=None, route_step=None,
                        carried=None, *,
                        batch: int, k: int, risk_mode: str, costmap: Costmap | None, map_resolution: float | None = None,
                        generator=None) -> dict[str, torch.Tensor]:
        """Guided sampling, selection and inverse dynamics on [B*K] rows; no host sync (capturable).
        With initial_noise given it takes the fast path's steps, else the reference's, drawing from `generator`.
        A map-conditioned model's map: map_layers [1, 4, h, w], map_origin [2], map_fields [B, F, h, w] (the goal
        distance fields), map_risk_read [1, 2, h, w] (MapRiskRead.dilate's, cached per map) and map_resolution;
        each state's patch is cut here, inside the captured graph, encoded once and read by the critic (and the
        denoiser) along the plans."""
        p, norm, dev, m = self.config.planner, self.normalizers, self.device, self.config.model
        start = norm.plan.normalize(start_in_plan_frame(states))
        if map_layers is None:
            context, map_view = model_context(norm, self.map_encoder, states, goals, None), None
            critic_view = None
        else:
            rows = torch.arange(batch, device=dev) * k  # each state's first candidate row
            patches = cut_patches(map_layers, map_origin, map_resolution, states[rows, :2], map_fields,
                                  m.map_patch_cells, m.map_patch_m, m.map_channels)
            context = model_context(norm, self.map_encoder, states[rows], goals[rows], patches).repeat_interleave(k, 0)
            map_view = MapView(patches, m.map_patch_m, norm.plan)
            # The critic reads risk at the map's own 0.1 m too: a graze of a region's corner is the risk it is.
            critic_view = dataclasses.replace(map_view, risk_read=MapRiskRead(map_risk_read, map_origin, map_resolution,
                                                                               states[rows, :2]))
        inpainting, route_commands, route_held = Inpainting(start), None, None
        if route_next is not None:
            inpainting, route_commands, route_held = self._route_inpainting(
                start, states, route_next, route_step, map_layers.shape[-1], map_origin, map_resolution, batch, k)
        denoiser_context, critic_context = None, context
        if m.route_label:  # the last k // 2 candidates of each state are asked to go through risk
            label = (torch.arange(batch * k, device=dev) % k >= k - k // 2).to(context.dtype)[:, None]
            denoiser_context = torch.cat([context, label], -1)
            if m.critic_reads_continuation:  # ... and scored as going on into it after their window (the rest: staying
                critic_context = denoiser_context  # out); a route candidate is in the half of its way's label
        denoiser_map = map_view if m.denoiser_reads_map else None
        fast = initial_noise is not None
        # One objective for guidance and selection, so the sampler pushes towards what selection picks.
        objective = PlanObjective(
            RiskTerm(self.critic, alpha_rows, risk_mode, quantiles_sorted=fast and critic_gradient.supports(self.critic),
                     map_view=critic_view),
            CostmapTerm(costmap, p.costmap_weight, norm.plan, states[:, :2]) if costmap is not None and p.costmap_weight > 0 else None)
        guidance = RiskGuidance(objective, p.guidance_scale, p.guidance_grad_clip, p.guidance_on)
        with _autocast(dev, self.precision):  # no autocast on the reference path: set_execution keeps it fp32
            if fast:
                steps = fast_steps(self.denoiser, self.schedule, critic_context, guidance, initial_noise, step_noise,
                                   denoiser_context=denoiser_context, denoiser_map=denoiser_map)
            else:
                shape = (len(start), self.horizon, self.state_dim)
                steps = reference_steps(self.denoiser, self.schedule, critic_context, guidance, shape, generator,
                                        denoiser_context=denoiser_context, denoiser_map=denoiser_map)
            x = ddim_loop(self.schedule, inpainting, steps)
        if carried is not None:
            x = _carry_over(x, carried, states, batch, k, norm)
            if route_held is not None:  # the carried plan (each state's last row) is driven by the inverse dynamics
                route_held = route_held & (torch.arange(batch * k, device=dev) % k != k - 1)

        # Select on the clean plans: critic at noise level 0, in standardised return units.
        q_norm = objective.risk.quantiles(x, critic_context, torch.zeros(x.shape[0], device=dev))
        scores = objective.score(q_norm, x)  # [B*K]
        chosen = scores.view(batch, k).argmax(1)  # [B]
        quantiles = norm.returns.unnormalize(q_norm)  # [B*K, N] in return units
        risk_values = objective.risk.score(quantiles)
        # Every candidate's first action (a collision check may rule out the chosen one). Clamped to the
        # range of actions in the data set: the IDM is not trusted to extrapolate.
        actions = norm.action.unnormalize(self.inverse_dynamics(x[:, 0], x[:, 1]).clamp(-1, 1))
        if route_held is not None:
            actions = torch.where(route_held[:, None], route_commands.to(actions.dtype), actions)
        plans = to_world(norm.plan.unnormalize(x), states[:, :2])
        plans[:, 0] = states  # exact, no round-off
        return {"plans": plans, "quantiles": quantiles, "risk_values": risk_values, "chosen": chosen, "actions": actions,
                "scores": scores}

    def _route_inpainting(self, start: Tensor, states: Tensor, route_next: Tensor, route_step: Tensor, width: int,
                          map_origin: Tensor, map_resolution: float, batch: int, k: int
                          ) -> tuple[Inpainting, Tensor, Tensor]:
        """`route_candidates` candidates of each state per way with their positions held to a route follower's
        rollout from the state (route_candidates.py): along the way round risk (the first of its route label 0
        candidates, where the model has the label) and along the shortest way (the first of its label 1 ones; without
        the label, the next ones). The ways: PlanningMap.route_steps, each cell's step down them [B, 2, h * w], rows
        `width` cells wide, at the collision check's clearance. The follower drives at the data's top speed and turn
        rate (the plan normaliser's v and omega range). A state whose way goes nowhere (the goal is reached, or the
        robot stands within the way's clearance of a wall) gets ordinary candidates there.
        -> (the inpainting, the follower's first command of each row [B*K, 2], which rows follow a way [B*K]).
        A row that follows a way is driven by its follower's command, not the inverse dynamics' reading of the
        denoiser's fill: the held positions are that command's, and the inverse dynamics, reading a heading and speed
        the denoiser filled in, kept full speed where the follower braked to turn (docs/method_choices.md)."""
        m, norm, dev, h = self.config.model, self.normalizers, self.device, self.horizon
        rows = torch.arange(batch, device=dev) * k
        max_v, max_omega = self._route_speed
        step_s = m.plan_stride * DATA_PERIOD_S
        # Long enough that only the goal ends a way within a plan (the follower brakes at its end).
        length = max_v * (h - 1) * step_s + LOOKAHEAD_M + max_v / GOAL_SLOWDOWN
        starts = states[rows].repeat_interleave(2, 0)  # [2B]: each state's two ways
        route, along = walk_route(route_next.flatten(0, 1), route_step.flatten(0, 1), width, map_origin, map_resolution,
                                  starts[:, :2], length)
        positions, first_command = follow_route(route, along, starts, h - 1, step_s, max_v, max_omega, ROUTE_MAX_ACCEL,
                                                ROUTE_MAX_ALPHA)
        held_xy = torch.zeros(batch, 2, h, 2, device=dev)
        held_xy[:, :, 1:] = norm.plan.select(slice(0, 2)).normalize(positions - starts[:, None, :2]).view(batch, 2, h - 1, 2)
        moved = (along[:, -1] > 0).view(batch, 2)
        # Which way (0 round risk, 1 shortest, -1 none) each of a state's K candidates follows.
        n, index = self.config.planner.route_candidates, torch.arange(k, device=dev)
        first_shortest = k - k // 2 if m.route_label else min(n, k)
        way = torch.full((k,), -1, dtype=torch.long, device=dev)
        way = torch.where(index < min(n, first_shortest), 0, way)
        way = torch.where((index >= first_shortest) & (index < first_shortest + n), 1, way)
        held = (way >= 0)[None] & moved.gather(1, way.clamp(min=0)[None].expand(batch, k))  # [B, K]
        xy = held_xy.gather(1, way.clamp(min=0)[None, :, None, None].expand(batch, k, h, 2))  # [B, K, H, 2]
        at = held.reshape(-1, 1) & (torch.arange(h, device=dev) > 0)  # every state but the start
        commands = first_command.view(batch, 2, 2).gather(1, way.clamp(min=0)[None, :, None].expand(batch, k, 2))
        return Inpainting(start, xy.reshape(batch * k, h, 2), at), commands.reshape(batch * k, 2), held.reshape(-1)

    def _use_cuda_graphs(self) -> bool:
        return self.device.type == "cuda" and self.cuda_graphs

    def _run_fast(self, inputs: dict, batch: int, k: int, risk_mode: str, costmap: Costmap | None,
                  map_resolution: float | None, graphs: bool) -> dict:
        fixed = dict(batch=batch, k=k, risk_mode=risk_mode, map_resolution=map_resolution)  # baked into a graph
        if not graphs:
            return self._program()(**inputs, **fixed, costmap=costmap)
        grid = None if costmap is None else (tuple(costmap.cost.shape), costmap.resolution, costmap.origin_x, costmap.origin_y)
        # The inputs' shapes too: a map's size is a graph's (its layers and fields are refilled every call).
        shapes = tuple((name, tuple(value.shape)) for name, value in inputs.items())
        key = (batch, k, risk_mode, grid, map_resolution, self.precision, self.compile_backend, shapes)
        captured = self._graphs.get(key)
        if captured is None:
            static = {name: value.clone() for name, value in inputs.items()}
            static_costmap = None
            if costmap is not None:  # its grid is a graph input too, refilled every call
                static["costmap_cost"] = costmap.cost.clone()
                static_costmap = Costmap(static["costmap_cost"], costmap.resolution, costmap.origin_x, costmap.origin_y)

            replan = self._program()

            def program(costmap_cost=None, **tensors):
                return replan(**tensors, **fixed, costmap=static_costmap)
            try:
                captured = CapturedProgram(program, static)
            except RuntimeError as e:  # never lose a replan to a capture (or compile) problem: run it eagerly
                warnings.warn(f"CUDA graph capture failed ({e}); this shape runs without a graph", stacklevel=3)
                captured = False
            if len(self._graphs) >= _MAX_GRAPHS:
                self._graphs.pop(next(iter(self._graphs)))
            self._graphs[key] = captured
        if captured is False:  # the plain program: a failed capture may have been a failed compile
            return self._replan_program(**inputs, **fixed, costmap=costmap)
        if costmap is not None:
            inputs = {**inputs, "costmap_cost": costmap.cost}
        return captured(**inputs)



def to_host(tensors: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Tensors on one device -> numpy arrays of the same shapes, in one device-to-host copy. They travel as float32:
    floats keep their values (the planner's outputs are float32), integers (indices < 2**24) and booleans are exact."""
    flat = torch.cat([t.reshape(-1).float() for t in tensors.values()]).cpu().numpy()
    out, at = {}, 0
    for name, t in tensors.items():
        values = flat[at:at + t.numel()].reshape(t.shape)
        at += t.numel()
        if t.dtype == torch.bool:
            values = values > 0.5
        elif not t.is_floating_point():
            values = values.astype(np.int64)
        out[name] = values
    return out


def _carry_over(x: Tensor, carried: Tensor, states: Tensor, batch: int, k: int, norm: Normalizers) -> Tensor:
    """x [B*K, H, D] normalised plan-frame candidates with each state's last one replaced by its carried world plan
    (carried [B, H, D]; a state whose plan holds a NaN keeps its sampled candidate). The carried plan is not
    denoised or guided again (it was, when it was chosen); the critic scores it like any other candidate, so it
    is executed only while nothing fresh scores higher."""
    rows = torch.arange(batch, device=x.device) * k  # each state's first row in [B*K]
    own = carried.clone()
    own[..., :2] = carried[..., :2] - states[rows, None, :2]
    own = norm.plan.normalize(own)
    keep = torch.isfinite(own).flatten(1).all(1)  # [B]
    x = x.view(batch, k, *x.shape[1:]).clone()
    x[:, -1] = torch.where(keep[:, None, None], torch.nan_to_num(own), x[:, -1])
    return x.view(batch * k, *x.shape[2:])


_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Captured shapes kept per planner (oldest evicted). Each holds its own memory pool, about proportional to
# its batch x K rows. 24 covers the 23 sizes of `padded_batch_size` that a batch shrinking from 1024 to 1
# passes through, so an evaluation's tail never evicts and recaptures a graph it still needs (a capture
# costs about three eager replans). The price is memory: those 23 sizes add up to ~3x the rows of the 11
# power-of-two sizes used before (6,367 vs 2,047 batch rows). It ran on H200s (4 planners per GPU, 12,288-episode
# evaluations) without trouble; the memory itself was not measured. If it matters on a smaller GPU,
# _PAD_STEPS_PER_DOUBLING = 2 gives 15 sizes (waste < 50 %).
_MAX_GRAPHS = 24
_PAD_POWERS_OF_TWO_UP_TO = 64  # below this, padding at most doubles a batch that is cheap anyway
_PAD_STEPS_PER_DOUBLING = 4


def padded_batch_size(n: int) -> int:
    """The batch size a CUDA-graph replan of `n` states runs as (the captured graph's size): the next power of
    two up to 64, then 4 steps per doubling (80, 96, 112, 128, 160, 192, 224, 256, 320, ..., 1024, 1280, ...),
    so above 64 padded < 1.25 n (powers of two all the way ran 520 robots as 1024, now 640: up to 2x the GPU
    work in an evaluation's tail). Ladder sizes map to themselves. A batch shrinking from 1024 to 1 passes
    through 23 sizes (7 up to 64, 16 above), all kept by `_MAX_GRAPHS`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"batch size must be an integer >= 1, got {n!r}")
    n = int(n)
    if n <= _PAD_POWERS_OF_TWO_UP_TO:
        return 1 << (n - 1).bit_length()
    step = (1 << ((n - 1).bit_length() - 1)) // _PAD_STEPS_PER_DOUBLING  # the power of two below n, split in steps
    return -(-n // step) * step


def _autocast(device: torch.device, precision: str):
    if _PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    # No weight-cast cache: a cache filled during capture would be freed under the graph.
    return torch.autocast(device.type, dtype=_PRECISIONS[precision], cache_enabled=False)


def _as_array(value, shape: tuple, name: str, meaning: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be numeric with shape {meaning}, got {value!r}") from e
    if arr.ndim != len(shape) or any(want is not None and got != want for got, want in zip(arr.shape, shape)):
        raise ValueError(f"{name} must have shape {meaning}, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has non-finite values: {arr}")
    return arr
