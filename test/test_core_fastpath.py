"""The fast replan path against the reference loop: same seed -> same plans and risk values.

Tolerances (return units; the untrained planner's returns are standardised with std 1):
fp32 fast path vs reference 1e-4 (only float reassociation differs: hoisted matmuls, the
hand-written critic gradient). Reduced precision, for this deliberately sharp random critic whose
risk values spread over ~0.4: fp16 1e-2, bf16 6e-2 (7 mantissa bits; on CPU it measured 0.023-0.033).
Whether a precision is good enough for the trained model is read off the benchmark's difference
columns (docs/performance.md), not decided here. The CUDA tests run in tools/gpu_bench.sh.
"""
import warnings

import numpy as np
import pytest
import torch
from test_core_helpers import single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.config import CoreConfig
from rs_diffuser_ros.core.costmap import Costmap
from rs_diffuser_ros.core.planner import _MAX_GRAPHS, RiskSensitivePlanner, padded_batch_size
from rs_diffuser_ros.core.risk import risk_measure
from rs_diffuser_ros.core.sampling.critic_gradient import CriticTailGradient
from rs_diffuser_ros.core.sampling.cuda_graph import CapturedProgram

STATE = np.array([1.5, 4.0, 0.3, 0.95, 0.4, 0.1], np.float32)
GOAL = np.array([10.5, 4.0], np.float32)
FP32_TOL = 1e-4
# On CUDA, "fp32" convolutions run in TF32 by default (cuDNN), and the captured graph may pick
# other kernels than the eager reference: measured 3e-4 apart on an H200 for risk values ~0.6
# and 1.2e-3 for values ~5 (relative 2.3e-4, about TF32's 10-bit mantissa): hence absolute + relative.
CUDA_FP32_TOL = 1e-3
CUDA_FP32_RTOL = 1e-3
REDUCED_TOL = {"fp16": 1e-2, "bf16": 6e-2}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (run by tools/gpu_bench.sh)")


def planner_of_default_size(device="cpu", **settings) -> RiskSensitivePlanner:
    """The shipped network sizes with random weights; a sharper critic so guidance moves the plans."""
    p = RiskSensitivePlanner.from_config(CoreConfig(), device=device, seed=3)
    with torch.no_grad():
        p.critic.net[-1].weight.mul_(20)
    p.configure(**{"candidates": 8, "ddim_steps": 4, **settings})
    return p


def reference_and_fast(p: RiskSensitivePlanner, precision="fp32", **plan_args):
    p.set_execution(fast=False)
    ref = p.plan_batch(**plan_args)
    p.set_execution(fast=True, precision=precision)
    return ref, p.plan_batch(**plan_args)


def assert_same_plans(ref, fast, tol, rtol=0.0):
    for r, f in zip(ref, fast):
        np.testing.assert_allclose(f.risk_values, r.risk_values, atol=tol, rtol=rtol)
        np.testing.assert_allclose(f.candidates, r.candidates, atol=50 * tol, rtol=0)
        assert f.chosen_index == r.chosen_index
        np.testing.assert_allclose(f.action, r.action, atol=50 * tol)


@pytest.mark.parametrize("mode,alpha", [("averse", 0.05), ("averse", 1.0), ("seeking", 0.2)])
def test_hand_written_critic_gradient_equals_autograd(mode, alpha):
    p = planner_of_default_size()
    m, levels = 5, p.schedule.sqrt_one_minus_ab
    x = torch.randn(m, p.horizon, 6)
    context = torch.randn(m, 4)
    alphas = torch.full((m,), alpha)
    analytic = CriticTailGradient(p.critic, context, levels, alphas, mode)
    for step in (0, len(levels) - 1):
        xg = x.clone().requires_grad_(True)
        value = risk_measure(p.critic(xg, context, levels[step].expand(m)), alphas, mode)
        (expected,) = torch.autograd.grad(value.sum(), xg)
        torch.testing.assert_close(analytic(x, step), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("settings", [
    {},  # the default: noisy guidance, deterministic DDIM
    {"guidance_scale": 0.0},
    {"guidance_on": "x0"},
    {"ddim_eta": 0.5},  # per-step noise, drawn up front in the same order as the reference
])
def test_fast_path_matches_the_reference_on_cpu(settings):
    p = planner_of_default_size(**settings)
    states = np.stack([STATE, STATE + np.array([2.0, 1.0, 0, 0, 0, 0], np.float32)])
    ref, fast = reference_and_fast(p, states=states, goals=np.stack([GOAL, GOAL]), alpha=[0.1, 1.0], seed=5)
    assert_same_plans(ref, fast, FP32_TOL)


def test_fast_path_matches_the_reference_with_a_costmap_and_risk_seeking():
    p = planner_of_default_size()
    occupancy = np.zeros((60, 60), np.int8)
    occupancy[45:, :] = 100
    costmap = Costmap.from_occupancy(occupancy, 0.1, 0.0, 0.0)
    ref, fast = reference_and_fast(p, states=STATE[None], goals=GOAL[None], alpha=0.3, risk_mode="seeking",
                                   costmap=costmap, seed=2)
    assert_same_plans(ref, fast, FP32_TOL)


def test_guidance_actually_moves_the_plans_the_comparison_is_made_on():
    """Guards the tests above: with a critic this sharp, guidance on and off give different plans."""
    p = planner_of_default_size()
    guided = p.plan(STATE, GOAL, 0.1, seed=5)
    p.configure(guidance_scale=0.0)
    unguided = p.plan(STATE, GOAL, 0.1, seed=5)
    assert np.abs(guided.candidates - unguided.candidates).max() > 100 * FP32_TOL


def test_fast_path_calls_the_critic_only_for_selection_and_the_unet_once_per_step():
    p = planner_of_default_size()
    calls = {"critic": 0, "unet_conditioning": 0}

    def count(name):
        def hook(*_):
            calls[name] += 1
        return hook
    p.critic.register_forward_hook(count("critic"))
    p.denoiser.time_mlp.register_forward_hook(count("unet_conditioning"))
    p.plan(STATE, GOAL, 0.1, seed=0)
    assert calls == {"critic": 1, "unet_conditioning": 1}  # both hoisted out of the 4-step loop
    p.set_execution(fast=False)
    calls.update(critic=0, unet_conditioning=0)
    p.plan(STATE, GOAL, 0.1, seed=0)
    assert calls == {"critic": 5, "unet_conditioning": 4}


def test_bad_execution_settings_are_named():
    p = planner_of_default_size()
    with pytest.raises(ValueError, match="precision must be one of"):
        p.set_execution(precision="int8")
    with pytest.raises(ValueError, match="reference path is fp32"):
        p.set_execution(fast=False, precision="bf16")
    with pytest.raises(ValueError, match="reference path runs eagerly"):
        p.set_execution(fast=False, compiled=True)
    with pytest.raises(TypeError, match="compiled must be a bool or a torch.compile backend name, got int"):
        p.set_execution(compiled=1)


def test_the_compiled_fast_path_plans_as_the_eager_one_and_compiles_once():
    """set_execution(compiled=...) puts the whole replan program through torch.compile. Here with the aot_eager
    backend (dynamo traces the program, the same ATen ops run; inductor's fused kernels need a compiler and ~100 s
    on this CPU): if the replan could not be traced, or traced into something else, the plans would differ."""
    p = planner_of_default_size()
    calls = [dict(states=STATE[None], goals=GOAL[None], alpha=0.1, seed=1),
             dict(states=(STATE + np.array([1.0, -0.5, 0, 0, 0.2, 0], np.float32))[None], goals=GOAL[None] + 1,
                  alpha=0.5, seed=2)]
    p.set_execution(fast=True)
    eager = [p.plan_batch(**c)[0] for c in calls]
    p.set_execution(fast=True, compiled="aot_eager")
    compiled = [p.plan_batch(**c)[0] for c in calls]
    program = p._compiled[1]
    assert p._compiled[0] == "aot_eager"
    for e, c in zip(eager, compiled):
        np.testing.assert_allclose(c.candidates, e.candidates, atol=1e-5)
        np.testing.assert_allclose(c.risk_values, e.risk_values, atol=1e-5)
        assert c.chosen_index == e.chosen_index
    p.set_execution(fast=True)
    assert p.plan_batch(**calls[0])[0].chosen_index == eager[0].chosen_index  # back to the eager program
    p.set_execution(fast=True, compiled="aot_eager")
    p.plan_batch(**calls[1])
    assert p._compiled[1] is program  # switching back does not compile again


# --- the batch sizes CUDA graphs are captured for (pure arithmetic: runs on CPU) ---

def test_padded_batch_sizes_are_powers_of_two_up_to_64_then_four_per_doubling():
    ladder = sorted({padded_batch_size(n) for n in range(1, 1025)})
    assert ladder == [1, 2, 4, 8, 16, 32, 64, 80, 96, 112, 128, 160, 192, 224, 256,
                      320, 384, 448, 512, 640, 768, 896, 1024]
    assert padded_batch_size(520) == 640  # the evaluation's tail case: was 1024
    assert [padded_batch_size(n) for n in (1025, 1280, 1281, 2049)] == [1280, 1280, 1536, 2560]


def test_padded_batch_size_is_monotone_covering_idempotent_and_wastes_under_a_quarter_above_64():
    sizes = [padded_batch_size(n) for n in range(1, 5000)]
    assert all(a <= b for a, b in zip(sizes, sizes[1:]))
    for n, padded in enumerate(sizes, start=1):
        assert n <= padded
        assert padded_batch_size(padded) == padded
        if n > 64:
            assert padded < 1.25 * n, (n, padded)
    assert padded_batch_size(np.int64(70)) == 80  # numpy integers (an array's shape, a sum) are batch sizes too


def test_a_batch_shrinking_from_1024_to_1_keeps_all_its_graphs():
    """Every padded size of an evaluation's shrinking batch stays captured: none evicted and captured again."""
    assert len({padded_batch_size(n) for n in range(1, 1025)}) <= _MAX_GRAPHS


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, None])
def test_padded_batch_size_names_a_bad_size(bad):
    with pytest.raises(ValueError, match="batch size must be an integer >= 1"):
        padded_batch_size(bad)


# --- CUDA: graph capture and reduced precision (run on the GPU machine by tools/gpu_bench.sh) ---

@cuda
def test_cuda_graph_replan_matches_the_reference_and_refills_its_inputs():
    p = planner_of_default_size("cuda", candidates=64, ddim_steps=8)
    calls = [dict(states=STATE[None], goals=GOAL[None], alpha=0.1, seed=1),
             dict(states=(STATE + np.array([1.0, -0.5, 0, 0, 0.2, 0], np.float32))[None], goals=GOAL[None] + 1,
                  alpha=0.5, seed=2)]
    p.set_execution(fast=False)
    refs = [p.plan_batch(**c) for c in calls]
    p.set_execution(fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture falls back with a warning: fail instead
        fasts = [p.plan_batch(**c) for c in calls + calls]  # the second round replays the captured graph
    assert len(p._graphs) == 1 and isinstance(next(iter(p._graphs.values())), CapturedProgram)
    for ref, fast in zip(refs + refs, fasts):
        assert_same_plans(ref, fast, CUDA_FP32_TOL, CUDA_FP32_RTOL)


@cuda
def test_cuda_graph_batches_are_padded_and_the_padding_dropped():
    """A batch that shrinks one robot at a time reuses a few graphs; what comes back is only what was asked."""
    p = planner_of_default_size("cuda", candidates=16)
    states = np.stack([STATE + np.array([0.3 * i, 0, 0, 0, 0, 0], np.float32) for i in range(5)])
    goals = np.repeat(GOAL[None], 5, 0)
    three = p.plan_batch(states[:3], goals[:3], alpha=0.1, seed=4)
    # The padded call of 3 is the call of 4 whose 4th row repeats the first: same noise, same plans.
    four = p.plan_batch(np.concatenate([states[:3], states[:1]]), goals[:4], alpha=0.1, seed=4)
    assert len(three) == 3 and len(four) == 4
    for a, b in zip(three, four):
        np.testing.assert_array_equal(a.candidates, b.candidates)
    assert len(p.plan_batch(states, goals, alpha=0.1, seed=4)) == 5
    assert sorted(key[0] for key in p._graphs) == [4, 8]


@cuda
def test_cuda_graph_with_a_costmap_reads_each_calls_grid():
    p = planner_of_default_size("cuda", candidates=32)
    costmaps = []
    for rows in (slice(45, None), slice(None, 35)):
        occupancy = np.zeros((60, 60), np.int8)
        occupancy[rows, :] = 100
        costmaps.append(Costmap.from_occupancy(occupancy, 0.1, 0.0, 0.0))
    p.set_execution(fast=False)
    refs = [p.plan_batch(STATE[None], GOAL[None], 0.1, costmap=c, seed=4) for c in costmaps]
    p.set_execution(fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fasts = [p.plan_batch(STATE[None], GOAL[None], 0.1, costmap=c, seed=4) for c in costmaps]
    assert len(p._graphs) == 1  # one grid shape: one graph, its cost buffer refilled
    for ref, fast in zip(refs, fasts):
        assert_same_plans(ref, fast, CUDA_FP32_TOL, CUDA_FP32_RTOL)


@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("settings", [{}, {"guidance_on": "x0"}])
def test_reduced_precision_graph_stays_within_the_stated_tolerance(settings, precision):
    p = planner_of_default_size("cuda", candidates=64, ddim_steps=8, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the autocast replan must capture too
        ref, fast = reference_and_fast(p, precision=precision, states=STATE[None], goals=GOAL[None], alpha=0.1, seed=3)
    np.testing.assert_allclose(fast[0].risk_values, ref[0].risk_values, atol=REDUCED_TOL[precision], rtol=0)


def test_results_come_to_the_host_in_one_copy_with_their_shapes_types_and_values():
    from rs_diffuser_ros.core.planner import to_host
    tensors = {"plans": torch.randn(2, 3, 4, 6), "index": torch.tensor([5, 2**20 + 1]),
               "allowed": torch.tensor([[True, False, True]]), "empty": torch.zeros(0, 2)}
    host = to_host(tensors)
    for name, t in tensors.items():
        assert host[name].shape == tuple(t.shape)
    np.testing.assert_array_equal(host["plans"], tensors["plans"].numpy())
    assert host["index"].dtype == np.int64 and host["index"].tolist() == [5, 2**20 + 1]
    assert host["allowed"].dtype == bool and host["allowed"].tolist() == [[True, False, True]]
