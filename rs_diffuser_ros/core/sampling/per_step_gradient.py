"""The guidance gradient grad_x rho_alpha(critic(x_t, context, sigma_t, along(x_t))) of the per-step map critic
(models/per_step_critic.py), written out by hand for the fast sampling path, as critic_gradient.py does for
the flat critic.

The critic: step_net (Linear, SiLU, ...) on each state's [state, patch channels there, time], pooled over the
window (mean, max, last state), a head (Linear, SiLU, ..., Linear) on [pooled, context, noise level], the
non-crossing quantiles. x_t enters twice: as the states, and through the patch channels read at the states'
positions (bilinear, lookup_gradient.py). Hoisted out of the loop: the head's response to context and noise
level for every step, the tail weights, the time column. Why: autograd's backward alone was ~75 small kernels
a step (after an ~18-kernel forward); this is ~32 for both (on a GPU the fast path's time is its kernel count).

Max-pooling ties: autograd splits a maximum's gradient evenly among the states that tie for it; here each of
them gets all of it (one comparison instead of four kernels). A tie needs two states of one window with
bitwise-equal features: in float32 that happens where SiLU underflows to 0 (pre-activation below about -100),
and there silu' is 0 too, so nothing flows back either way; elsewhere noisy continuous windows do not produce
one. The test compares with autograd on such windows.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..map_input import sample_patches
from ..models.per_step_critic import PerStepMapCritic
from ..objective import RiskTerm
from .critic_gradient import head_output_weights
from .lookup_gradient import grid_gradient

_silu_backward = torch.ops.aten.silu_backward  # (d out) * silu'(z) in one kernel


def _linear_silu_chain(layers: list[nn.Module], ends_linear: bool) -> bool:
    linears, silus = layers[::2], layers[1::2]
    return (len(layers) % 2 == (1 if ends_linear else 0) and all(isinstance(m, nn.Linear) for m in linears)
            and all(isinstance(m, nn.SiLU) for m in silus))


def supports(critic: nn.Module) -> bool:
    """Only the exact PerStepMapCritic layout (step_net: Linear, SiLU pairs; head: Linear, SiLU, ..., Linear)."""
    return (type(critic) is PerStepMapCritic and _linear_silu_chain(list(critic.step_net), ends_linear=False)
            and _linear_silu_chain(list(critic.head), ends_linear=True))


class PerStepTailGradient:
    def __init__(self, risk: RiskTerm, context: Tensor, noise_levels: Tensor):
        """risk: the objective's term (its critic a PerStepMapCritic, with the map_view the rows read); context
        [M, C], noise_levels [S] (one per sampler step)."""
        critic, map_view = risk.critic, risk.map_view
        self.map_view, self.n_state = map_view, critic.state_dim
        self.patches = map_view.patches[:, :critic.along_channels].contiguous()  # the channels it reads
        self.time = critic.time.to(context.dtype)  # [1, H, 1]
        self.step_linears = list(critic.step_net)[::2]
        # d steps / d (state, channels): the first layer's columns but the time's.
        self.w_steps_in = self.step_linears[0].weight[:, :-1]
        head = list(critic.head)[::2]
        first, self.head_rest = head[0], head[1:]
        n_pooled = 3 * self.step_linears[-1].out_features
        self.w_pooled = first.weight[:, :n_pooled]  # [hidden, 3 * step_hidden]
        # The head's first layer's response to context and noise level, for every step at once: [S, M, hidden].
        w_context, w_noise = first.weight[:, n_pooled:-1], first.weight[:, -1]
        self.head_bias = ((context[:, :critic.read_context] @ w_context.T + first.bias)[None]
                          + noise_levels[:, None, None] * w_noise[None, None])
        # Backward through the pooling: the mean's 1/H folded into its weights.
        step_hidden, horizon = n_pooled // 3, critic.horizon
        self.w_pooled_back = torch.cat([self.w_pooled[:, :step_hidden] / horizon, self.w_pooled[:, step_hidden:]], 1)
        # d rho / d out = [weight_sum, sigmoid(gaps) * tail_sums]: through the last layer the base's part is constant.
        weights = risk.tail_weights(critic.n_quantiles).to(context.dtype)  # the term's own, also used in selection
        weight_sum, tail_sums = head_output_weights(weights, risk.risk_mode)
        self.gap_sums = torch.cat([torch.zeros_like(weight_sum), tail_sums], -1)  # [M, N], 0 on the base
        self.base_back = weight_sum * head[-1].weight[0]  # [M, hidden]

    def __call__(self, x: Tensor, step: int) -> Tensor:
        """x [M, H, D] at sampler step `step` -> d rho / d x [M, H, D] (unclipped; a view of a fresh tensor)."""
        m, horizon = x.shape[:2]
        # Forward, keeping each pre-activation (silu_backward needs it).
        grid = self.map_view.grid(x)  # [M, H, 2]
        steps = torch.cat([x, sample_patches(self.patches, grid).to(x.dtype), self.time.expand(m, -1, -1)], -1)
        h, step_pre = steps.flatten(0, 1), []
        for layer in self.step_linears:
            step_pre.append(torch.addmm(layer.bias, h, layer.weight.T))
            h = nn.functional.silu(step_pre[-1])
        h = h.view(m, horizon, -1)
        h_max = h.amax(1)
        pooled = torch.cat([h.mean(1), h_max, h[:, -1]], -1)
        head_pre = [torch.addmm(self.head_bias[step], pooled, self.w_pooled.T)]
        for layer in self.head_rest:
            head_pre.append(torch.addmm(layer.bias, nn.functional.silu(head_pre[-1]), layer.weight.T))
        out = head_pre.pop()

        # Backward: head, pooling, step_net, the patch lookup.
        grad = torch.addmm(self.base_back.to(out.dtype), torch.sigmoid(out) * self.gap_sums.to(out.dtype),
                           self.head_rest[-1].weight)
        ins = [self.w_pooled_back] + [layer.weight for layer in self.head_rest[:-1]]  # the weight into each pre
        for z, w in zip(reversed(head_pre), reversed(ins)):
            grad = _silu_backward(grad.to(z.dtype), z) @ w
        d_mean, d_max, d_last = grad.view(m, 3, -1).unbind(1)
        grad = torch.addcmul(d_mean[:, None], h == h_max[:, None], d_max[:, None])  # [M, H, step_hidden]
        grad[:, -1].add_(d_last)
        grad = grad.flatten(0, 1)
        ins = [self.w_steps_in] + [layer.weight for layer in self.step_linears[1:]]
        for z, w in zip(reversed(step_pre), reversed(ins)):
            grad = _silu_backward(grad.to(z.dtype), z) @ w
        grad = grad.view(m, horizon, -1)  # d rho / d [state, channels]
        d_grid = grid_gradient(grad[..., self.n_state:], self.patches, grid)
        grad = grad[..., :self.n_state]
        grad[..., :2].addcmul_(d_grid.to(grad.dtype), self.map_view.grid_scale.to(grad.dtype))
        return grad
