"""O-RAAC: offline risk-averse actor-critic (Urpí, Curi, Krause, ICLR 2021).

    python -m rs_diffuser_ros.baselines.oraac --dataset datasets/riskypointmass/mixed-v0 --out runs/oraac_pm

Our implementation of the released code (github.com/nuria95/O-RAAC: oraaclib/agent/ORAAC.py,
oraaclib/util/neural_networks/neural_networks.py, json_params/ORAAC/*.json), step by step:

- a VAE behaviour model (BCQ's: encoder and decoder of two 750-unit ReLU layers, latent size
  2 * action_dim, log-std clamped to [-4, 15]) trained on (s, a) with MSE reconstruction + 0.5 KL;
  its decoder samples a behaviour-like action with the latent drawn from N(0, 1) clipped to
  [-0.5, 0.5], and with the latent 0 when acting;
- a perturbation actor (400-300 ReLU) that adds lamda * tanh(.) to the decoder's action (then
  clips to the action range): the policy stays within lamda of the data;
- an IQN critic Z(s, a, tau) trained by the quantile-Huber loss against r + gamma (1 - terminal)
  Z'(s', a') with 32 levels tau ~ U(0, 1) for the prediction and 32 others for the target, a' = the
  target actor's perturbation of a decoded action at s';
- every 2nd step the actor maximises CVaR_0.1 of Z at its action, estimated as the mean of Z at 8
  levels tau ~ U(0, 0.1), and the target critic and actor move towards the live ones (Polyak).

Hyper-parameters follow json_params/ORAAC (walker/cheetah files where they differ from hopper):
batch 128, gamma 0.99, critic lr 1e-3, actor lr 1e-4, VAE Adam at its default 1e-3, target
rate 0.005, target-update frequency 2, 32 critic and 8 policy quantiles, CVaR alpha 0.1,
lamda 0.25; IQN critic: (s, a) -> 256 -> 16 features, 16 cosine features of tau -> 16 (ReLU
gate), product -> 32 -> 1. Ours differ in: one 256-unit layer on concat(s, a) where theirs has
separate 128-unit layers for s and a; the cosine features are cos(pi i tau), i = 1..16 (theirs
start at i = 0, a constant); each sample draws its own taus (theirs share one draw per batch);
observations standardised and actions scaled to [-1, 1] by the dataset; far fewer gradient steps
(their files allow up to 10^7 with early stopping on evaluation returns; we train a fixed number
offline, without looking at evaluation returns) and the VAE's early stop on a loss plateau is left
out (it keeps training). The checkpoint keeps what acting needs: the VAE decoder, the actor and the
normaliser.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rs_diffuser_ros.baselines.cuda_graph_step import GraphedStep
from rs_diffuser_ros.baselines.iqn import IQNCritic, quantile_huber_loss, soft_update
from rs_diffuser_ros.baselines.offline_cli import train_from_command_line
from rs_diffuser_ros.baselines.offline_data import Normalizer, Transitions
from rs_diffuser_ros.baselines.policy_file import load_weights, read_policy, save_policy
from rs_diffuser_ros.baselines.random_draws import normal, trainer_generator, uniform
from rs_diffuser_ros.baselines.update_loop import run_updates

FORMAT = "rs_diffuser_ros.baselines.oraac/1"
LATENT_CLIP = 0.5     # BCQ/O-RAAC clip sampled latents to [-0.5, 0.5]


class ORAACError(RuntimeError):
    """An O-RAAC checkpoint or setting that cannot be used; the message names it."""


@dataclass
class ORAACConfig:
    steps: int = 20_000
    batch_size: int = 128
    gamma: float = 0.99
    critic_lr: float = 1e-3
    actor_lr: float = 1e-4
    vae_lr: float = 1e-3
    target_rate: float = 0.005
    actor_every: int = 2
    critic_quantiles: int = 32
    policy_quantiles: int = 8
    cvar_alpha: float = 0.1
    lamda: float = 0.25
    vae_hidden: int = 750
    actor_hidden: tuple[int, int] = (400, 300)
    critic_base: tuple[int, int] = (256, 16)
    critic_merge: int = 32
    n_cos: int = 16

    def validate(self) -> "ORAACConfig":
        for name in ("steps", "batch_size", "actor_every", "critic_quantiles", "policy_quantiles", "vae_hidden",
                     "critic_merge", "n_cos"):
            if getattr(self, name) < 1:
                raise ORAACError(f"O-RAAC setting '{name}' must be >= 1, got {getattr(self, name)}")
        if not 0 < self.cvar_alpha <= 1:
            raise ORAACError(f"O-RAAC setting 'cvar_alpha' must be in (0, 1], got {self.cvar_alpha}")
        if not 0 <= self.lamda <= 1:
            raise ORAACError(f"O-RAAC setting 'lamda' must be in [0, 1], got {self.lamda}")
        return self


class BehaviourDecoder(nn.Module):
    """The VAE's decoder: (s, z) -> a behaviour-like action in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.latent_dim = 2 * action_dim
        self.net = nn.Sequential(nn.Linear(obs_dim + self.latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, action_dim), nn.Tanh())

    def forward(self, obs: Tensor, z: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """z None: sampled from N(0, 1) clipped to +-0.5 (training); pass zeros to act."""
        if z is None:
            z = normal((obs.shape[0], self.latent_dim), generator, obs.device)
            z = z.clamp(-LATENT_CLIP, LATENT_CLIP)
        return self.net(torch.cat([obs, z], dim=-1))


class BehaviourVAE(nn.Module):
    def __init__(self, obs_dim: int, action_dim: int, hidden: int):
        super().__init__()
        self.decoder = BehaviourDecoder(obs_dim, action_dim, hidden)
        latent = self.decoder.latent_dim
        self.encoder = nn.Sequential(nn.Linear(obs_dim + action_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                     nn.ReLU())
        self.mean, self.log_std = nn.Linear(hidden, latent), nn.Linear(hidden, latent)

    def loss(self, obs: Tensor, action: Tensor) -> Tensor:
        h = self.encoder(torch.cat([obs, action], dim=-1))
        mean, std = self.mean(h), self.log_std(h).clamp(-4, 15).exp()
        z = mean + std * torch.randn_like(std)
        recon = F.mse_loss(self.decoder(obs, z), action)
        kl = (-torch.log(std) + (std.pow(2) + mean.pow(2)) / 2 - 0.5).mean()   # KL(N(mean, std) || N(0, 1))
        return recon + 0.5 * kl


class PerturbationActor(nn.Module):
    """a = clip(a_vae + lamda * tanh(f(s, a_vae)), -1, 1)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, int], lamda: float):
        super().__init__()
        self.lamda = lamda
        self.net = nn.Sequential(nn.Linear(obs_dim + action_dim, hidden[0]), nn.ReLU(), nn.Linear(hidden[0], hidden[1]),
                                 nn.ReLU(), nn.Linear(hidden[1], action_dim), nn.Tanh())

    def forward(self, obs: Tensor, behaviour_action: Tensor) -> Tensor:
        perturbation = self.lamda * self.net(torch.cat([obs, behaviour_action], dim=-1))
        return (behaviour_action + perturbation).clamp(-1, 1)


class ORAACPolicy(nn.Module):
    """What evaluation loads: act(obs [B, D]) -> action [B, A] in world units (latent 0, as O-RAAC acts)."""

    def __init__(self, obs_dim: int, action_dim: int, config: ORAACConfig):
        super().__init__()
        self.obs_dim, self.action_dim = obs_dim, action_dim
        self.normalizer = Normalizer(obs_dim, action_dim)
        self.decoder = BehaviourDecoder(obs_dim, action_dim, config.vae_hidden)
        self.actor = PerturbationActor(obs_dim, action_dim, tuple(config.actor_hidden), config.lamda)

    def forward(self, obs: Tensor) -> Tensor:
        x = self.normalizer.observations(obs)
        behaviour = self.decoder(x, torch.zeros(x.shape[0], self.decoder.latent_dim, device=x.device))
        return self.normalizer.from_unit(self.actor(x, behaviour))

    @torch.no_grad()
    def act(self, observations: np.ndarray) -> np.ndarray:
        obs = np.asarray(observations, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ORAACError(f"act: observations must be [B, {self.obs_dim}], got {obs.shape}")
        return self(torch.as_tensor(obs)).numpy()


class ORAACTrainer:
    def __init__(self, data: Transitions, config: ORAACConfig, seed: int = 0, device: str = "cpu",
                 cuda_graph: bool = True):
        self.cfg = config.validate()
        torch.manual_seed(seed)
        self.device = torch.device(device)
        obs_dim, action_dim = data.obs_dim, data.action_dim
        self.policy = ORAACPolicy(obs_dim, action_dim, config)
        self.policy.normalizer.fit(data)
        normalized = self.policy.normalizer.normalized(data)
        self.data = Transitions(*(t.to(self.device) for t in (normalized.observations, normalized.actions,
                                                               normalized.rewards, normalized.next_observations,
                                                               normalized.terminals)))
        self.policy.to(self.device)
        self.vae = BehaviourVAE(obs_dim, action_dim, config.vae_hidden).to(self.device)
        self.vae.decoder = self.policy.decoder          # the policy file keeps the trained decoder
        self.actor = self.policy.actor
        make_critic = lambda: IQNCritic(obs_dim + action_dim, tuple(config.critic_base), config.critic_merge,  # noqa: E731
                                        config.n_cos, layer_norm=False, tau_gate="relu").to(self.device)
        self.critic, self.target_critic = make_critic(), make_critic()
        self.target_critic.load_state_dict(self.critic.state_dict())
        self.target_actor = PerturbationActor(obs_dim, action_dim, tuple(config.actor_hidden), config.lamda).to(self.device)
        self.target_actor.load_state_dict(self.actor.state_dict())
        graphable = self.device.type == "cuda"  # Adam's step count on the device, as a CUDA graph needs
        self.vae_optimizer = torch.optim.Adam(self.vae.parameters(), lr=config.vae_lr, capturable=graphable)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, capturable=graphable)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, capturable=graphable)
        self.generator = trainer_generator(seed, self.device)
        self.steps = 0
        # Two updates (critic only; critic and the delayed actor), each its own CUDA graph on a GPU.
        variants = {with_actor: (lambda with_actor=with_actor: self._update(with_actor)) for with_actor in (False, True)}
        if self.device.type == "cuda" and cuda_graph:
            variants = {k: GraphedStep(f, f"oraac{' actor' if k else ''}") for k, f in variants.items()}
        self._variants = variants

    def _uniform(self, batch: int, n: int, high: float = 1.0) -> Tensor:
        return uniform((batch, n), self.generator, self.device) * high

    def update(self) -> dict[str, Tensor]:
        """One step: VAE and critic, and every actor_every-th step the actor and the target networks."""
        self.steps += 1
        return self._variants[self.steps % self.cfg.actor_every == 0]()

    def _update(self, with_actor: bool) -> dict[str, Tensor]:
        cfg = self.cfg
        obs, action, reward, next_obs, terminal = self.data.sample(cfg.batch_size, self.generator)
        batch = obs.shape[0]

        vae_loss = self.vae.loss(obs, action)
        self.vae_optimizer.zero_grad(set_to_none=True)
        vae_loss.backward()
        self.vae_optimizer.step()

        tau = self._uniform(batch, cfg.critic_quantiles)
        z = self.critic(obs, action, tau)
        with torch.no_grad():
            next_action = self.target_actor(next_obs, self.vae.decoder(next_obs, generator=self.generator))
            next_z = self.target_critic(next_obs, next_action, self._uniform(batch, cfg.critic_quantiles))
            target = reward[:, None] + cfg.gamma * (1 - terminal[:, None]) * next_z
        critic_loss = quantile_huber_loss(z, tau, target)
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        row = {"vae_loss": vae_loss.detach(), "critic_loss": critic_loss.detach()}  # tensors: no GPU sync per step
        if with_actor:
            with torch.no_grad():
                behaviour = self.vae.decoder(obs, generator=self.generator)
            tail = self.critic(obs, self.actor(obs, behaviour), self._uniform(batch, cfg.policy_quantiles, cfg.cvar_alpha))
            actor_loss = -tail.mean()
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_optimizer.step()
            soft_update(self.target_critic, self.critic, cfg.target_rate)
            soft_update(self.target_actor, self.actor, cfg.target_rate)
            row["cvar"] = -actor_loss.detach()
        return row


def train(data: Transitions, config: ORAACConfig, seed: int = 0, device: str = "cpu", log_every: int = 1000,
          log=print, deadline_s: float | None = None) -> tuple[ORAACPolicy, list[dict]]:
    trainer = ORAACTrainer(data, config, seed, device)
    history = run_updates("oraac", trainer.update, config.steps, log_every, log, deadline_s)
    return trainer.policy.cpu().eval(), history


def save(policy: ORAACPolicy, path: str | Path, config: ORAACConfig, extra: dict | None = None) -> Path:
    return save_policy(policy, path, FORMAT, {"obs_dim": policy.obs_dim, "action_dim": policy.action_dim,
                                              "config": asdict(config), **(extra or {})})


def load(path: str | Path) -> ORAACPolicy:
    metadata, tensors = read_policy(path, FORMAT, ORAACError, "O-RAAC", ("obs_dim", "action_dim", "config"))
    try:
        config = ORAACConfig(**metadata["config"])
        policy = ORAACPolicy(int(metadata["obs_dim"]), int(metadata["action_dim"]), config)
    except (TypeError, ValueError) as e:
        raise ORAACError(f"{path}: metadata fields 'obs_dim', 'action_dim', 'config' do not describe an "
                         f"O-RAAC policy ({e})") from e
    return load_weights(policy, tensors, path, ORAACError)


def main(argv: list[str] | None = None) -> int:
    return train_from_command_line("oraac", __doc__.split("\n\n")[0], ORAACConfig, ORAACError,
                                   ("steps", "batch_size", "gamma", "critic_lr", "actor_lr", "cvar_alpha", "lamda",
                                    "vae_hidden"), train, save, argv)


if __name__ == "__main__":
    sys.exit(main())
