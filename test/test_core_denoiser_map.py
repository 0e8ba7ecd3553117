"""A denoiser that reads the map along its plan (model.denoiser_reads_map): the patch's channels at each state of the
window it denoises, as the critic reads them, so a plan can bend round a block the map embedding alone cannot place."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rs_diffuser_ros.core.config import ConfigError
from rs_diffuser_ros.core.map_input import PlanningMap
from rs_diffuser_ros.core.models.networks import NETWORK_NAMES, build_networks
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.sampling.cuda_graph import CapturedProgram
from rs_diffuser_ros.core.training.train import load_grown, train
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)
from test_core_fastpath import CUDA_FP32_RTOL, CUDA_FP32_TOL, cuda
from test_core_map_input import grid_with, level_grid, map_config

STATE, GOAL = [-2.5, 0.0, 0.0, 1.0, 0.0, 0.0], [2.5, 0.0]


def _reading_config(**training):
    cfg = map_config(**training)
    cfg.model.denoiser_reads_map = True
    return cfg.validate()


def _grown_pair(seed: int = 5):
    """A map model and the same model grown a map read along the plan (its new weights at zero)."""
    plain_cfg, reading_cfg = map_config(), _reading_config()
    plain_cfg.planner.candidates = reading_cfg.planner.candidates = 8
    torch.manual_seed(seed)
    old = build_networks(plain_cfg.model)
    grown = build_networks(reading_cfg.model)
    load_grown(grown, {n: net.state_dict() for n, net in old.items()}, "test")
    norms = Normalizers.untrained_defaults(plain_cfg.model)
    return (RiskSensitivePlanner(plain_cfg, old, norms, "cpu"), RiskSensitivePlanner(reading_cfg, grown, norms, "cpu"))


def test_reading_the_map_along_the_plan_needs_a_map_model():
    cfg = tiny_config()
    cfg.model.denoiser_reads_map = True
    with pytest.raises(ConfigError, match="denoiser_reads_map needs a map-conditioned model"):
        cfg.validate()


def test_a_grown_denoiser_plans_as_before_until_its_map_weights_move_and_both_paths_hand_it_the_read():
    occ = grid_with([(-0.2, -3.0, 0.2, 3.0)])  # a wall across the way to the goal
    walled = PlanningMap.from_grids(occ, level_grid(occ, []))
    plain, reading = _grown_pair()
    assert reading.denoiser.map_channels == reading.config.model.map_channels > 0
    before = {}
    for fast in (True, False):  # the fast path (hoisted U-Net) and the reference
        plain.set_execution(fast=fast)
        reading.set_execution(fast=fast)
        before[fast] = plain.plan(STATE, GOAL, seed=0, map_input=walled)
        same = reading.plan(STATE, GOAL, seed=0, map_input=walled)
        np.testing.assert_allclose(same.candidates, before[fast].candidates, atol=1e-5)  # zero weights change nothing
        np.testing.assert_allclose(same.risk_values, before[fast].risk_values, atol=1e-5)
    with torch.no_grad():  # the first convolution's columns for the map channels
        reading.denoiser.downs[0][0].conv1[0].weight[:, reading.state_dim:] += 0.5
    moved = {}
    for fast in (True, False):
        reading.set_execution(fast=fast)
        moved[fast] = reading.plan(STATE, GOAL, seed=0, map_input=walled).candidates
        # Same map, same embedding, same noise: only the read along the plan differs from the plain model's.
        assert np.abs(moved[fast] - before[fast].candidates).max() > 1e-2
    np.testing.assert_allclose(moved[True], moved[False], atol=1e-4)  # the two paths read the map alike


def test_a_denoiser_that_reads_the_map_refuses_to_run_without_it_and_a_plain_one_refuses_a_read():
    plain_cfg, reading_cfg = map_config(), _reading_config()
    reading = build_networks(reading_cfg.model)["denoiser"]
    plain = build_networks(plain_cfg.model)["denoiser"]
    x, t = torch.randn(2, 8, 6), torch.zeros(2, dtype=torch.long)
    context = torch.randn(2, reading_cfg.model.denoiser_context_dim)
    with pytest.raises(ValueError, match="reads 5 map channels along the plan; got none"):
        reading(x, t, context)
    with pytest.raises(ValueError, match=r"reads 0 map channels along the plan; got \(2, 8, 5\)"):
        plain(x, t, context, torch.randn(2, 8, 5))


def test_a_grown_unet_refuses_weights_that_differ_in_more_than_new_input_columns():
    torch.manual_seed(0)
    old = build_networks(map_config().model)
    wider_cfg = _reading_config()
    wider_cfg.model.unet_dim = 24  # a different network, not the same one with more inputs
    wider = build_networks(wider_cfg.model)
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_grown(wider, {n: old[n].state_dict() for n in NETWORK_NAMES}, "test")


def test_a_model_that_reads_the_map_along_its_plan_trains_saves_and_plans(tmp_path):
    occ = grid_with([(0.5, 2.2, 0.7, 3.0)])
    maps = {"m0": (occ, level_grid(occ, [])), "m1": (occ, level_grid(occ, [(-1.0, -0.5, 1.0, 0.5)]))}
    episodes = synthetic_episodes(6)
    for i, e in enumerate(episodes):
        e["layout"] = f"m{i % 2}"
    summary = train(_reading_config(steps=6, checkpoint_every=100), episodes, tmp_path, seed=0, device="cpu",
                    progress=False, maps=maps)
    assert summary["steps"] == 6
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    assert planner.config.model.denoiser_reads_map
    # The first block reads the state and the map channels: its weights were trained, not left at their start.
    assert planner.denoiser.downs[0][0].conv1[0].in_channels == 6 + planner.config.model.map_channels
    result = planner.plan(STATE, GOAL, seed=0, map_input=PlanningMap.from_grids(occ, level_grid(occ, [])))
    assert np.isfinite(result.candidates).all() and result.candidates.shape == (planner.config.planner.candidates, 8, 6)


@cuda
def test_on_cuda_the_captured_replan_reads_each_calls_map():
    """The read along the plan is a graph input: two maps through one captured graph plan as the same program run
    eagerly, and pick as the reference does. (Positions are compared with the eager fast path, not the reference:
    this random net, with weight on the map columns, turns the kernels' rounding into up to 0.11 m of candidate
    position near the wall on an H200, 0.06 m with TF32 off; risk values stay within 1e-4 and the pick the same.)"""
    cfg = _reading_config()
    cfg.planner.candidates = 32
    torch.manual_seed(7)
    nets = build_networks(cfg.model)
    with torch.no_grad():  # weights on the map columns, so the read moves the plans
        nets["denoiser"].downs[0][0].conv1[0].weight[:, cfg.model.state_dim:] += 0.5
    p = RiskSensitivePlanner(cfg, nets, Normalizers.untrained_defaults(cfg.model), "cuda")
    occ = grid_with([(-0.2, -3.0, 0.2, 3.0)])
    maps = [PlanningMap.from_grids(occ, level_grid(occ, [])),
            PlanningMap.from_grids(occ, level_grid(occ, [(-1.5, -1.0, 1.5, 1.0)]))]
    state, goal = np.array([STATE], np.float32), np.array([GOAL], np.float32)

    def plans(maps_in_order):
        return [p.plan_batch(state, goal, 0.1, seed=4, map_input=m)[0] for m in maps_in_order]
    p.set_execution(fast=False)
    refs = plans(maps)
    p.set_execution(fast=True, cuda_graphs=False)
    eager = plans(maps)
    p.set_execution(fast=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed capture falls back with a warning: fail instead
        graphed = plans(maps + maps)  # the second round replays the graph
    assert len(p._graphs) == 1 and isinstance(next(iter(p._graphs.values())), CapturedProgram)
    assert np.abs(refs[0].candidates - refs[1].candidates).max() > 0.5  # the two maps plan differently
    for ref, fast, graph in zip(refs + refs, eager + eager, graphed):
        np.testing.assert_allclose(graph.candidates, fast.candidates, atol=CUDA_FP32_TOL)
        np.testing.assert_allclose(graph.risk_values, ref.risk_values, atol=CUDA_FP32_TOL, rtol=CUDA_FP32_RTOL)
        assert graph.chosen_index == ref.chosen_index
