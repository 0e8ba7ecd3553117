"""The training command end to end on synthetic episodes: outputs, losses, resume, DDP, errors."""
import csv
import json
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.config import ConfigError, CoreConfig
from rs_diffuser_ros.core.map_input import PASSABLE_CLEARANCE_M
from rs_diffuser_ros.core.planner import RiskSensitivePlanner
from rs_diffuser_ros.core.training.train import DEADLINE_CHECK_STEPS, main, train


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_training_writes_checkpoints_logs_and_a_loadable_model(tmp_path):
    episodes = synthetic_episodes(6)
    began = time.perf_counter()
    summary = train(tiny_config(steps=20), episodes, tmp_path, seed=0, device="cpu", progress=False)
    elapsed = time.perf_counter() - began
    assert summary["steps"] == 20 and summary["world_size"] == 1
    assert 0 < summary["wall_s"] <= elapsed + 0.01, (summary["wall_s"], elapsed)   # seconds, of this run
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000010.safetensors", "step_0000020.safetensors"]
    for name in ("model.safetensors", "train_state.pt", "losses.csv", "losses.png", "summary.json"):
        assert (tmp_path / name).is_file(), name
    rows = _rows(tmp_path / "losses.csv")
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("diffusion", "critic", "inverse_dynamics"))
    # The resume state holds only tensors and plain containers: loadable without unpickling code.
    state = torch.load(tmp_path / "train_state.pt", weights_only=True)
    assert state["step"] == 20
    planner = RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu")
    obs = episodes[0]["observations"][0]
    result = planner.plan(obs[:6], obs[6:], 0.1, seed=0)
    assert result.plan.shape == (8, 6) and np.isfinite(result.action).all()
    # Normalisers were fitted on the data set, not left at defaults: start positions span the
    # episodes' positions (but their last), plan-frame offsets are bounded by H steps of driving.
    starts = np.concatenate([e["observations"][:-1, :2] for e in episodes])
    np.testing.assert_allclose(planner.normalizers.position.low, starts.min(0), rtol=1e-6)
    np.testing.assert_allclose(planner.normalizers.position.high, starts.max(0), rtol=1e-6)
    assert planner.normalizers.plan.low[0] <= 0 <= planner.normalizers.plan.high[0]
    assert planner.normalizers.plan.high[:2].max() <= 7 * 0.1 * 1.0 + 1e-5  # 7 steps of at most 1 m/s * 0.1 s


def test_a_strided_model_trains_on_windows_that_reach_stride_times_as_far(tmp_path):
    """model.plan_stride = 2: the plan normaliser is fitted on windows of every second state, so a plan reaches about
    twice as far as a stride-1 model's (7 plan steps of 0.2 s); the checkpoint keeps the stride."""
    import dataclasses

    episodes = synthetic_episodes(6)
    reach = {}
    for stride in (1, 2):
        config = tiny_config(steps=2)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, plan_stride=stride))
        train(config.validate(), episodes, tmp_path / str(stride), seed=0, device="cpu", progress=False)
        planner = RiskSensitivePlanner.from_checkpoint(tmp_path / str(stride) / "model.safetensors", device="cpu")
        assert planner.config.model.plan_stride == stride
        reach[stride] = float(planner.normalizers.plan.high[0])
    assert reach[1] <= 7 * 0.1 * 1.0 + 1e-5 < reach[2] <= 14 * 0.1 * 1.0 + 1e-5
    assert reach[2] > 1.8 * reach[1]


def test_losses_go_down(tmp_path):
    summary = train(tiny_config(steps=240, batch_size=64, log_every=20, checkpoint_every=1000, lr=2e-3),
                    synthetic_episodes(10), tmp_path, seed=0, device="cpu", progress=False)
    rows = _rows(tmp_path / "losses.csv")
    first, last = rows[0], rows[-1]
    for k in ("diffusion", "critic", "inverse_dynamics"):
        assert float(last[k]) < 0.8 * float(first[k]), (k, first[k], last[k])
    assert summary["final_losses"]["critic"] == pytest.approx(float(last["critic"]))


def test_seeded_training_is_reproducible(tmp_path):
    eps = synthetic_episodes(4)
    train(tiny_config(steps=10), eps, tmp_path / "a", seed=3, device="cpu", progress=False)
    train(tiny_config(steps=10), eps, tmp_path / "b", seed=3, device="cpu", progress=False)
    a, b = (load_file(str(tmp_path / run / "model.safetensors")) for run in ("a", "b"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_continues_from_the_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    eps = synthetic_episodes(4)
    train(tiny_config(steps=20), eps, tmp_path / "straight", seed=1, device="cpu", progress=False)
    train(tiny_config(steps=10), eps, tmp_path / "resumed", seed=1, device="cpu", progress=False)
    summary = train(tiny_config(steps=20), eps, tmp_path / "resumed", seed=1, device="cpu", progress=False, resume=True)
    assert summary["steps"] == 20
    assert [int(r["step"]) for r in _rows(tmp_path / "resumed" / "losses.csv")] == [5, 10, 15, 20]
    a = RiskSensitivePlanner.from_checkpoint(tmp_path / "straight" / "model.safetensors", device="cpu")
    b = RiskSensitivePlanner.from_checkpoint(tmp_path / "resumed" / "model.safetensors", device="cpu")
    for name in a.networks:
        for (k, va), vb in zip(a.networks[name].state_dict().items(), b.networks[name].state_dict().values()):
            torch.testing.assert_close(va, vb, msg=f"{name}.{k}")


def test_resume_with_a_different_model_config_is_refused(tmp_path):
    eps = synthetic_episodes(3)
    train(tiny_config(steps=5), eps, tmp_path, device="cpu", progress=False)
    other = tiny_config(steps=10)
    other.model.unet_dim = 16
    with pytest.raises(RuntimeError, match=r"train_state.pt: --resume with a different config: model.unet_dim: saved 8 vs now 16"):
        train(other, eps, tmp_path, device="cpu", progress=False, resume=True)


def test_corrupt_resume_state_is_named(tmp_path):
    (tmp_path / "train_state.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="train_state.pt: cannot load training state"):
        train(tiny_config(steps=5), synthetic_episodes(2), tmp_path, device="cpu", progress=False, resume=True)


def test_cli_reports_config_errors_naming_file_and_field(tmp_path):
    bad = tmp_path / "model.yaml"
    bad.write_text("model:\n  horizon: 30\n  unet_dim_mults: [1, 2, 4]\n")
    with pytest.raises(SystemExit, match=r"model.yaml: model.horizon=30 must be divisible by"):
        main(["--dataset", "unused", "--out", str(tmp_path / "run"), "--config", str(bad)])
    bad.write_text("training:\n  stepz: 3\n")
    with pytest.raises(SystemExit, match=r"model.yaml: unknown field\(s\) \['training.stepz'\]"):
        main(["--dataset", "unused", "--out", str(tmp_path / "run"), "--config", str(bad)])
    bad.write_text("planner:\n  candidates: many\n")
    with pytest.raises(SystemExit, match=r"model.yaml: field planner.candidates must be int, got 'many'"):
        main(["--dataset", "unused", "--out", str(tmp_path / "run"), "--config", str(bad)])


def test_shipped_config_file_is_the_documented_default_with_map_conditioning():
    # The dataclass defaults stay a per-map model, so checkpoints written before the map fields existed
    # load as what they are; config/model.yaml turns map conditioning on (the general model).
    shipped = CoreConfig.from_yaml(os.path.join(os.path.dirname(__file__), "..", "config", "model.yaml"))
    expected = CoreConfig()
    expected.model.map_patch_cells, expected.model.map_safe_distance, expected.training.lr = 32, True, 3e-4
    expected.model.map_route_channels, expected.model.critic_kind = True, "per_step"
    expected.model.map_passable_clearance_m = PASSABLE_CLEARANCE_M  # new models: the cells the robot fits
    assert shipped == expected
    assert not CoreConfig().model.map_conditioned


def test_config_rejects_out_of_range_values():
    with pytest.raises(ConfigError, match="x.yaml: planner.alpha must be in"):
        CoreConfig.from_dict({"planner": {"alpha": 0.0}}, where="x.yaml")
    with pytest.raises(ConfigError, match="planner.guidance_on must be one of noisy, x0"):
        CoreConfig.from_dict({"planner": {"guidance_on": "clean"}})


def _ddp_worker(rank, world, port, out, episodes):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(tiny_config(steps=6, log_every=3, checkpoint_every=100), episodes, out, seed=0, device="cpu", progress=False)


def _ddp_deadline_worker(rank, world, port, out, episodes, deadlines):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(tiny_config(steps=100_000, log_every=10, checkpoint_every=100_000), episodes, out, seed=0, device="cpu",
          progress=False, deadline_s=deadlines[rank])


@pytest.mark.parametrize("deadlines", [(3600.0, 2.0), (3600.0, 1e-6)], ids=["during-training", "before-the-first-step"])
def test_ranks_whose_clocks_disagree_stop_at_one_step_instead_of_hanging(tmp_path, deadlines):
    # Rank 1 runs out of time (mid-run, or before its first step) while rank 0 has an hour: a rank stopping
    # alone would leave the other blocked in the gradient all-reduce for ever.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = mp.spawn(_ddp_deadline_worker, args=(2, port, str(tmp_path), synthetic_episodes(3), deadlines), nprocs=2,
                     join=False)
    waited = 0
    while not procs.join(timeout=5):
        waited += 5
        if waited > 300:
            for p in procs.processes:
                p.kill()
            pytest.fail("the ranks did not stop together within 300 s (one is waiting for the other)")
    steps = json.loads((tmp_path / "summary.json").read_text())["steps"]
    assert steps < 100_000 and steps % DEADLINE_CHECK_STEPS == 0


def test_ddp_under_torchrun_environment_trains_and_rank0_writes(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path), synthetic_episodes(3)), nprocs=2, join=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    assert RiskSensitivePlanner.from_checkpoint(tmp_path / "model.safetensors", device="cpu").plan(
        np.zeros(6), np.ones(2), 0.5, seed=0).action.shape == (2,)
