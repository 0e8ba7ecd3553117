"""The guidance gradient grad_x rho_alpha(critic(x_t, sigma_t)) of the MLP critic, written out by hand.

For the fast sampling path. The critic is Linear/SiLU layers and a non-crossing head
(q_0 = base, q_i = base + sum_{j<=i} softplus(gap_j)), so the gradient of a tail-weighted sum
of its quantiles is a short chain of matmuls. Writing it out (instead of autograd) lets the
loop run without building a graph at every step, and hoists what does not change over the
loop: the context and noise-level part of the first layer, and the tail weights for alpha.
The reference (guidance.NoisyGuide, autograd of the plan objective) is what this is tested
against (test/test_core_fastpath.py).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..models.critic import QuantileCritic
from ..risk import tail_weights


def supports(critic: nn.Module) -> bool:
    """Only the exact QuantileCritic layout (Linear, SiLU, ..., Linear); anything else uses autograd."""
    if type(critic) is not QuantileCritic:
        return False
    layers = list(critic.net)
    return (len(layers) % 2 == 1 and all(isinstance(m, nn.Linear) for m in layers[::2])
            and all(isinstance(m, nn.SiLU) for m in layers[1::2]))


class CriticTailGradient:
    def __init__(self, critic: QuantileCritic, context: Tensor, noise_levels: Tensor, alpha: Tensor, risk_mode: str):
        """context [M, C], noise_levels [S] (one per sampler step), alpha [M]."""
        linears = list(critic.net)[::2]
        first = linears[0]
        n_window = first.in_features - context.shape[1] - 1
        self.w_window = first.weight[:, :n_window]  # [hidden, H*D]
        # The first layer's response to context and noise level, for every step at once: [S, M, hidden].
        w_context, w_noise = first.weight[:, n_window:-1], first.weight[:, -1]
        self.first_bias = ((context @ w_context.T + first.bias)[None]
                           + noise_levels[:, None, None] * w_noise[None, None])
        # A tail-means critic's last layer also gives its boundary quantiles (critic_head.py): only the first N rows
        # make the values rho reads.
        n = critic.n_quantiles
        last = linears[-1]
        self.hidden = [(layer.weight, layer.bias) for layer in linears[1:-1]] + [(last.weight[:n], last.bias[:n])]
        # rho = sum_i w_i q_i over ascending quantiles (averse) or descending ones (seeking).
        weights = tail_weights(alpha, critic.n_quantiles).to(context.dtype)
        if risk_mode == "seeking":
            weights = weights.flip(-1)
        # d rho / d base = sum_i w_i = 1;  d rho / d gap_j = softplus'(gap_j) * sum_{i >= j} w_i.
        self.weight_sum = weights.sum(-1, keepdim=True)  # [M, 1]
        self.tail_sums = weights.flip(-1).cumsum(-1).flip(-1)[:, 1:]  # [M, N-1]

    def __call__(self, x: Tensor, step: int) -> Tensor:
        """x [M, H, D] at sampler step `step` -> d rho / d x [M, H, D] (unclipped)."""
        pre = [x.flatten(1) @ self.w_window.T + self.first_bias[step]]
        for weight, bias in self.hidden:
            pre.append(nn.functional.silu(pre[-1]) @ weight.T + bias)
        out = pre.pop()
        grad = torch.cat([self.weight_sum.to(out.dtype),
                          torch.sigmoid(out[:, 1:]) * self.tail_sums.to(out.dtype)], -1)
        weights = [weight for weight, _ in self.hidden][::-1]
        for z, w in zip(reversed(pre), weights):
            grad = torch.ops.aten.silu_backward((grad @ w).to(z.dtype), z)  # (grad @ w) * silu'(z), one kernel
        return (grad @ self.w_window).view_as(x)
