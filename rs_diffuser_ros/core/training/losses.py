"""The three training losses in one module, so one DDP wrapper synchronises all gradients.

- denoiser: DDPM with clean-window (x0) prediction, MSE on windows whose first state is kept
  clean (as the sampler inpaints it) and excluded from the loss;
- critic: quantile-Huber (tail means: tail_mean_loss.py) against the window's Monte-Carlo return (standardised),
  read on windows at a random noise level (a fraction clean), the way guidance and selection read it;
- inverse dynamics: MSE of the normalised action of each transition (s_t, s_t+1 = a window's
  first two states, in the plan frame as the planner hands them over).
Windows are denoised in the plan frame (positions relative to the first state, plan_frame.py),
conditioned on the relative goal and the absolute start position (a per-map model) or the egocentric
map patch's embedding (a map-conditioned model, whose critic also reads the patch along the window, as its
denoiser does with model.denoiser_reads_map, and whose map encoder learns from both the denoiser's and the critic's
loss; conditioning.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conditioning import MapView, model_context
from ..config import TrainingConfig
from ..normalizer import Normalizers
from ..plan_frame import to_plan_frame
from .quantile_loss import quantile_huber_loss
from .tail_mean_loss import tail_mean_loss
from ..schedule import DiffusionSchedule
from .map_batches import TrainingMaps


class TrainingObjective(nn.Module):
    def __init__(self, networks: dict[str, nn.Module], schedule: DiffusionSchedule, normalizers: Normalizers,
                 cfg: TrainingConfig, maps: TrainingMaps | None = None, critic_only: bool = False,
                 route_label: bool = False, denoiser_reads_map: bool = False, critic_continuation: bool = False,
                 critic_on_arrived: bool = False):
        """critic_only: the denoiser, inverse dynamics and map encoder are frozen (train --train-only critic): their
        losses are not computed (reported as 0) and the context is computed without gradient."""
        super().__init__()
        self.critic_only, self.route_label, self.denoiser_reads_map = critic_only, route_label, denoiser_reads_map
        self.critic_continuation, self.critic_on_arrived = critic_continuation, critic_on_arrived
        self.map_encoder = networks["map_encoder"]
        self.maps = maps
        self.denoiser = networks["denoiser"]
        self.critic = networks["critic"]
        self.inverse_dynamics = networks["inverse_dynamics"]
        self.schedule = schedule
        self.normalizers = normalizers
        self.cfg = cfg

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        norm, sched = self.normalizers, self.schedule
        windows = batch["windows"]
        x0 = norm.plan.normalize(to_plan_frame(windows))
        patches = None if self.maps is None else self.maps.patches(windows[:, 0, :2], batch["episode"])
        # One reader of the patches along a window, for the critic and (model.denoiser_reads_map) the denoiser.
        view = None if patches is None else MapView(patches, self.maps.extent_m, norm.plan)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.critic_only):
            context = model_context(norm, self.map_encoder, windows[:, 0], batch["goal"], patches)
        b = x0.shape[0]

        t = torch.randint(0, sched.n_train_steps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = sched.q_sample(x0, t, noise)
        x_t[:, 0] = x0[:, 0]
        zero = x0.new_zeros(())
        # The route label (model.route_label): where the window's episode goes from its start, for the denoiser; where
        # it goes on after the window, for a critic that reads it (model.critic_reads_continuation). A critic without
        # it must judge a plan by where the window goes.
        denoiser_context = torch.cat([context, batch["goes_into_risk"][:, None]], -1) if self.route_label else context
        critic_context = (torch.cat([context, batch["goes_on_into_risk"][:, None]], -1) if self.critic_continuation
                          else context)
        diffusion = zero
        if not self.critic_only:
            # A denoiser that reads the map along its plan reads it where x_t's states lie, as in sampling.
            along = view.along(x_t) if self.denoiser_reads_map else None
            diffusion = F.mse_loss(self.denoiser(x_t, t, denoiser_context, along)[:, 1:], x0[:, 1:])

        clean = torch.rand(b, device=x0.device) < self.cfg.critic_clean_fraction
        noise_level = torch.where(clean, torch.zeros_like(x0[:, 0, 0]), sched.noise_level(t))
        critic_in = torch.where(clean[:, None, None], x0, x_t)
        along = () if view is None else (view.along(critic_in),)
        returns = norm.returns.normalize(batch["return"])
        # training.critic_on_arrived: not the windows of episodes stuck until the time limit. They are weighted 0, not
        # indexed out: the batch keeps its shape (no host sync a step), and a batch of stuck windows alone gives 0.
        keep = (batch["arrived"] > 0).float() if self.critic_on_arrived else None
        values, boundaries = self.critic.with_boundaries(critic_in, critic_context, noise_level, *along)
        critic = (quantile_huber_loss(values, returns, self.cfg.huber_kappa, weights=keep) if boundaries is None
                  else tail_mean_loss(values, boundaries, returns, self.cfg.huber_kappa, weights=keep))

        if self.critic_only:
            return {"diffusion": zero, "critic": critic, "inverse_dynamics": zero}
        # The IDM reads what the planner will give it: the first two states of a plan-frame window.
        action = self.inverse_dynamics(x0[:, 0], x0[:, 1])
        inverse_dynamics = F.mse_loss(action, norm.action.normalize(batch["action"]))
        return {"diffusion": diffusion, "critic": critic, "inverse_dynamics": inverse_dynamics}
