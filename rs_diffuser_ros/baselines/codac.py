"""CODAC: conservative offline distributional actor-critic (Ma, Jayaraman, Bastani, NeurIPS 2021).

    python -m rs_diffuser_ros.baselines.codac --dataset datasets/riskypointmass/mixed-v0 --out runs/codac_pm

Our implementation of the released code (github.com/JasonMa2016/CODAC, distributional/codac.py,
`version=2`, the default), step by step:

- twin IQN critics Z1, Z2 (32 quantile fractions per sample, CODAC's random IQN fractions), and
  a tanh-Gaussian SAC actor, each with target copies updated by Polyak averaging (rate 5e-3);
- critic target: r + gamma (1 - terminal) (min(Z1', Z2')(s', a') - alpha log pi(a'|s')), a' from the
  target actor, fitted with the quantile-Huber loss weighted by the target fractions' widths;
- conservative penalty (CQL on one random quantile level per batch): logsumexp over 10 uniform
  random actions, 10 actor actions at s and 10 at s' (each importance-corrected by its log-density),
  minus the mean quantile of the dataset action, times min_z_weight; with the Lagrange variant the
  penalty is alpha' (gap - 10) and alpha' is raised by gradient ascent while the gap exceeds 10;
- actor: maximise the CVaR_0.1 of min(Z1, Z2) at its own action minus alpha log pi, after the critic
  step. The CVaR weight per fraction is CODAC's `distortion_de`: (1/0.1) 1[tau_hat < 0.1], clamped to
  5 as their code does (it halves the critic term against the entropy term; kept for fidelity).

Units (`action_units`, default "env", as CODAC): the networks work in actions scaled to [-1, 1] by the
dataset's per-axis limits, but log pi is the density of the env's action (CODAC's SAC policy scales
tanh to the action box, so its log-prob carries -sum log(half range)) and the penalty's random actions
are U(-1, 1) in env units whatever the box. For the point mass's +-0.1 that puts the entropy term
alpha log pi 0.2 * 2 log 10 = 0.92 per step lower (a cost, not a bonus, near the goal) and the random
actions mostly outside the box. Before issue 16 both were in [-1, 1] network units ("unit", kept to
reproduce those runs): a softer entropy term and random actions inside the data's range.

Hyper-parameters are CODAC's for Risky PointMass (train_offline.py with --env riskymass): gamma
0.99, fixed entropy alpha 0.2 (riskymass turns entropy tuning off), critic lr 3e-4, actor lr 3e-5,
alpha' lr 3e-4, hidden 256, batch 256, Lagrange threshold 10, 10 000 gradient steps (100 epochs of
100), and min_z_weight 0.1, the value of CODAC's README command for its risky navigation task (Risky
Ant; neither the README nor the config file gives one for riskymass). The argparse default, 10 (its
D4RL setting), was ours before issue 16 and breaks the distributional critic on these tasks: the
penalty lifts every quantile of a dataset action by alpha' * min_z_weight per element, while the
quantile loss pulls back by at most 1 per element (its gradient is a CDF mismatch). The penalty, not
the returns, then shapes how Z depends on the action: on a one-state task the dataset actions'
quantiles rose above every return, flat in tau (test_codac_penalty_leaves_the_return_distribution_
to_the_quantile_loss); on Risky PointMass the quantiles were flat in tau (CVaR = mean, no tail) and
ranked actions by data density, the straight action (clipped onto the box's corner) highest even
inside the disc, so the CVaR actor drove straight through it.
Ours differ in: observations standardised; one Adam per critic pair (Adam is per-parameter, so this
equals their two). The checkpoint keeps what acting needs: the actor and the normaliser.
"""
from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from rs_diffuser_ros.baselines.cuda_graph_step import GraphedStep
from rs_diffuser_ros.baselines.iqn import IQNCritic, quantile_huber_loss, random_fractions, soft_update
from rs_diffuser_ros.baselines.offline_cli import train_from_command_line
from rs_diffuser_ros.baselines.offline_data import Normalizer, Transitions
from rs_diffuser_ros.baselines.policy_file import load_weights, read_policy, save_policy
from rs_diffuser_ros.baselines.random_draws import integers, trainer_generator, uniform
from rs_diffuser_ros.baselines.update_loop import run_updates

FORMAT = "rs_diffuser_ros.baselines.codac/1"
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0   # SAC's GaussianPolicy clamp
CVAR_WEIGHT_CLAMP = 5.0                 # CODAC's distortion_de clamps the risk weights to [0, 5]
# "env": CODAC's convention. Its SAC policy scales tanh to the env's action box, so log pi is a density in the
# env's action units, and the penalty's random actions are U(-1, 1) in those units whatever the box. "unit":
# both in the networks' [-1, 1] units (this module before issue 16; kept to reproduce those runs).
ACTION_UNITS = ("env", "unit")
RANDOM_ACTION_BOUND = 1.0               # CODAC: torch.FloatTensor(...).uniform_(-1, 1), in env units


class CODACError(RuntimeError):
    """A CODAC checkpoint or setting that cannot be used; the message names it."""


@dataclass
class CODACConfig:
    steps: int = 10_000
    batch_size: int = 256
    gamma: float = 0.99
    entropy_alpha: float = 0.2
    critic_lr: float = 3e-4
    actor_lr: float = 3e-5
    lagrange_lr: float = 3e-4
    target_rate: float = 5e-3
    hidden: int = 256
    n_cos: int = 64
    num_quantiles: int = 32
    num_random: int = 10
    min_z_weight: float = 0.1          # CODAC's command for its risky navigation task (Risky Ant); 10 is D4RL's
    lagrange_threshold: float = 10.0   # < 0: no Lagrange multiplier, a fixed min_z_weight penalty
    risk_alpha: float = 0.1            # CVaR level the actor optimises
    action_units: str = "env"          # where log-densities and the penalty's random actions live (ACTION_UNITS)

    def validate(self) -> "CODACConfig":
        for name in ("steps", "batch_size", "hidden", "n_cos", "num_quantiles", "num_random"):
            if getattr(self, name) < 1:
                raise CODACError(f"CODAC setting '{name}' must be >= 1, got {getattr(self, name)}")
        if not 0 < self.risk_alpha <= 1:
            raise CODACError(f"CODAC setting 'risk_alpha' must be in (0, 1], got {self.risk_alpha}")
        if self.action_units not in ACTION_UNITS:
            raise CODACError(f"CODAC setting 'action_units' must be one of {ACTION_UNITS}, got {self.action_units!r}")
        if self.min_z_weight < 0:
            raise CODACError(f"CODAC setting 'min_z_weight' must be >= 0, got {self.min_z_weight}")
        return self


class TanhGaussianActor(nn.Module):
    """SAC's GaussianPolicy: two ReLU layers, mean and clamped log-std, tanh squashing to [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, action_dim)
        self.log_std = nn.Linear(hidden, action_dim)
        for layer in self.modules():   # SAC's weights_init_: Xavier-uniform weights, zero biases
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight, gain=1)
                nn.init.zeros_(layer.bias)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Reparameterised action in [-1, 1] and its log-density [B, 1]."""
        h = self.trunk(obs)
        mean, log_std = self.mean(h), self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)
        normal = torch.distributions.Normal(mean, log_std.exp(), validate_args=False)  # checks would sync the GPU
        x = normal.rsample()
        action = torch.tanh(x)
        log_prob = (normal.log_prob(x) - torch.log(1 - action.pow(2) + 1e-6)).sum(-1, keepdim=True)
        return action, log_prob

    def deterministic(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.mean(self.trunk(obs)))


class CODACPolicy(nn.Module):
    """What evaluation loads: act(obs [B, D]) -> action [B, A] in world units (the actor's mean)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.obs_dim, self.action_dim, self.hidden = obs_dim, action_dim, hidden
        self.normalizer = Normalizer(obs_dim, action_dim)
        self.actor = TanhGaussianActor(obs_dim, action_dim, hidden)

    def forward(self, obs: Tensor) -> Tensor:
        return self.normalizer.from_unit(self.actor.deterministic(self.normalizer.observations(obs)))

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise CODACError(f"act: observations must be [B, {self.obs_dim}], got {obs.shape}")
        return self(torch.as_tensor(obs)).numpy()


class CODACTrainer:
    def __init__(self, data: Transitions, config: CODACConfig, seed: int = 0, device: str = "cpu",
                 cuda_graph: bool = True):
        self.cfg = config.validate()
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.policy = CODACPolicy(data.obs_dim, data.action_dim, config.hidden)
        self.policy.normalizer.fit(data)
        self.data = self.policy.normalizer.normalized(data)
        self.data = Transitions(*(t.to(self.device) for t in (self.data.observations, self.data.actions,
                                                               self.data.rewards, self.data.next_observations,
                                                               self.data.terminals)))
        self.policy.to(self.device)
        self.actor = self.policy.actor
        make_critic = lambda: IQNCritic(data.obs_dim + data.action_dim, (config.hidden,), config.hidden,  # noqa: E731
                                        config.n_cos, layer_norm=True, tau_gate="sigmoid").to(self.device)
        self.critics = nn.ModuleList([make_critic(), make_critic()])
        self.target_critics = nn.ModuleList([make_critic(), make_critic()])
        self.target_critics.load_state_dict(self.critics.state_dict())
        self.target_actor = TanhGaussianActor(data.obs_dim, data.action_dim, config.hidden).to(self.device)
        self.target_actor.load_state_dict(self.actor.state_dict())
        graphable = self.device.type == "cuda"  # Adam's step count on the device, as a CUDA graph needs
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr, capturable=graphable)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, capturable=graphable)
        self.log_alpha_prime = torch.zeros(1, device=self.device, requires_grad=True)
        self.alpha_prime_optimizer = torch.optim.Adam([self.log_alpha_prime], lr=config.lagrange_lr, capturable=graphable)
        self.generator = trainer_generator(seed, self.device)
        self._update = GraphedStep(self.update_eager, "codac") if self.device.type == "cuda" and cuda_graph else None
        # Network actions u in [-1, 1] are env actions a = centre + half_range * u (the dataset's limits).
        norm = self.policy.normalizer
        half_range = ((norm.action_high - norm.action_low) / 2).to(self.device)
        centre = ((norm.action_high + norm.action_low) / 2).to(self.device)
        if config.action_units == "env":
            # log p_env(a) = log p_unit(u) - sum log half_range; CODAC's random actions in env units.
            self.log_density_shift = -float(torch.log(half_range).sum())
            self.random_low = (-RANDOM_ACTION_BOUND - centre) / half_range
            self.random_high = (RANDOM_ACTION_BOUND - centre) / half_range
            self.random_log_density = -data.action_dim * math.log(2 * RANDOM_ACTION_BOUND)
        else:
            self.log_density_shift = 0.0
            self.random_low, self.random_high = -torch.ones_like(centre), torch.ones_like(centre)
            self.random_log_density = -data.action_dim * math.log(2.0)

    def sample_action(self, actor: TanhGaussianActor, obs: Tensor) -> tuple[Tensor, Tensor]:
        """An action in network units and its log-density in the configured units (`action_units`)."""
        action, log_prob = actor.sample(obs)
        return action, log_prob + self.log_density_shift

    def random_actions(self, n: int) -> Tensor:
        """The penalty's uniform random actions [n, A], in network units (see `action_units`)."""
        u = uniform((n, len(self.random_low)), self.generator, self.device)
        return self.random_low + u * (self.random_high - self.random_low)

    def _fractions(self, batch: int) -> tuple[Tensor, Tensor]:
        return random_fractions(batch, self.cfg.num_quantiles, self.generator, self.device)

    def _repeated_values(self, obs: Tensor, actions: Tensor, tau: Tensor) -> list[Tensor]:
        """Z_i(obs, each of the k actions per row, tau [B, 1]) -> [B, k] per critic."""
        k = actions.shape[0] // obs.shape[0]
        obs_k, tau_k = obs.repeat_interleave(k, 0), tau.repeat_interleave(k, 0)
        return [critic(obs_k, actions, tau_k).view(obs.shape[0], k) for critic in self.critics]

    def update(self) -> dict[str, Tensor]:
        """One gradient step of critics, penalty multiplier and actor (on a GPU, a CUDA graph's replay)."""
        return self._update() if self._update is not None else self.update_eager()

    def update_eager(self) -> dict[str, Tensor]:
        cfg = self.cfg
        obs, action, reward, next_obs, terminal = self.data.sample(cfg.batch_size, self.generator)
        batch = obs.shape[0]
        new_action, log_pi = self.sample_action(self.actor, obs)

        # Critic: distributional soft Bellman target from the target networks.
        with torch.no_grad():
            next_action, next_log_pi = self.sample_action(self.target_actor, next_obs)
            next_tau, next_widths = self._fractions(batch)
            target_z = torch.min(*[c(next_obs, next_action, next_tau) for c in self.target_critics])
            target_z = target_z - cfg.entropy_alpha * next_log_pi
            z_target = reward[:, None] + (1 - terminal[:, None]) * cfg.gamma * target_z
        tau, _ = self._fractions(batch)
        z_pred = [c(obs, action, tau) for c in self.critics]
        td_losses = [quantile_huber_loss(z, tau, z_target, next_widths) for z in z_pred]

        # Conservative penalty at one random quantile level.
        k = cfg.num_random
        with torch.no_grad():
            random_actions = self.random_actions(batch * k)
            current_actions, current_log_pi = self.sample_action(self.actor, obs.repeat_interleave(k, 0))
            next_actions, next_log_pis = self.sample_action(self.actor, next_obs.repeat_interleave(k, 0))
        level = integers(cfg.num_quantiles, (1,), self.generator, self.device)  # a tensor: no host sync
        level_tau = tau.index_select(1, level)
        gaps = []
        for z_rand, z_curr, z_next, z in zip(self._repeated_values(obs, random_actions, level_tau),
                                             self._repeated_values(obs, current_actions, level_tau),
                                             self._repeated_values(obs, next_actions, level_tau), z_pred):
            # CQL evaluates the actions proposed at s' at s too: more out-of-data samples to push down.
            cat = torch.cat([z_rand - self.random_log_density, z_next - next_log_pis.view(batch, k),
                             z_curr - current_log_pi.view(batch, k)], dim=1)
            gaps.append((torch.logsumexp(cat, dim=1).mean() - z.mean()) * cfg.min_z_weight)
        if cfg.lagrange_threshold >= 0:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            lagrange_loss = -alpha_prime * sum(g.detach() - cfg.lagrange_threshold for g in gaps) / 2
            self.alpha_prime_optimizer.zero_grad(set_to_none=True)
            lagrange_loss.backward()
            self.alpha_prime_optimizer.step()
            penalties = [alpha_prime.detach() * (g - cfg.lagrange_threshold) for g in gaps]
        else:
            alpha_prime, penalties = torch.ones(1), gaps
        critic_loss = sum(td + pen for td, pen in zip(td_losses, penalties))
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        # Actor: CVaR_alpha of the (updated) critics at its own action, plus entropy.
        new_tau, new_widths = self._fractions(batch)
        risk_weights = ((new_tau < cfg.risk_alpha).float() / cfg.risk_alpha).clamp(0.0, CVAR_WEIGHT_CLAMP)
        q = torch.min(*[(risk_weights * new_widths * c(obs, new_action, new_tau)).sum(-1, keepdim=True)
                        for c in self.critics])
        actor_loss = (cfg.entropy_alpha * log_pi - q).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_optimizer.step()

        soft_update(self.target_actor, self.actor, cfg.target_rate)
        soft_update(self.target_critics, self.critics, cfg.target_rate)
        # Detached tensors, not floats: a .item() per value per step would stall the GPU queue (run_updates
        # reads them only when it logs).
        return {"td_loss": (td_losses[0] + td_losses[1]).detach() / 2, "gap": (gaps[0] + gaps[1]).detach() / 2,
                "alpha_prime": alpha_prime.detach().reshape(()), "actor_loss": actor_loss.detach(),
                "cvar_q": q.detach().mean()}


def train(data: Transitions, config: CODACConfig, seed: int = 0, device: str = "cpu", log_every: int = 1000,
          log=print, deadline_s: float | None = None) -> tuple[CODACPolicy, list[dict]]:
    trainer = CODACTrainer(data, config, seed, device)
    history = run_updates("codac", trainer.update, config.steps, log_every, log, deadline_s)
    return trainer.policy.cpu().eval(), history


def save(policy: CODACPolicy, path: str | Path, config: CODACConfig, extra: dict | None = None) -> Path:
    return save_policy(policy, path, FORMAT, {"obs_dim": policy.obs_dim, "action_dim": policy.action_dim,
                                              "hidden": policy.hidden, "config": asdict(config), **(extra or {})})


def load(path: str | Path) -> CODACPolicy:
    metadata, tensors = read_policy(path, FORMAT, CODACError, "CODAC", ("obs_dim", "action_dim", "hidden"))
    try:
        policy = CODACPolicy(int(metadata["obs_dim"]), int(metadata["action_dim"]), int(metadata["hidden"]))
    except (TypeError, ValueError) as e:
        raise CODACError(f"{path}: metadata fields 'obs_dim', 'action_dim', 'hidden' must be integers ({e})") from e
    return load_weights(policy, tensors, path, CODACError)


def main(argv: list[str] | None = None) -> int:
    return train_from_command_line("codac", __doc__.split("\n\n")[0], CODACConfig, CODACError,
                                   ("steps", "batch_size", "min_z_weight", "lagrange_threshold", "risk_alpha", "actor_lr",
                                    "critic_lr", "gamma", "entropy_alpha", "hidden", "action_units"), train, save, argv)


if __name__ == "__main__":
    sys.exit(main())
