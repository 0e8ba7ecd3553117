"""End to end: the evaluation command on a tiny random model and a short-time-limit layout writes its
JSON, Markdown and both figures; lockstep stepping gives the same episodes as one env at a time."""
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from risky_nav.layout import LAYOUT_DIR
from rs_diffuser_ros.baselines import behaviour_cloning
from rs_diffuser_ros.core.checkpoint import save_checkpoint
from rs_diffuser_ros.core.config import CoreConfig, ModelConfig, PlannerConfig
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.eval.__main__ import main
from rs_diffuser_ros.eval.claims import check_claims
from rs_diffuser_ros.eval.metrics import METRICS, Estimate
from rs_diffuser_ros.eval.settings import parse_settings


@pytest.fixture(scope="module")
def short_layout(tmp_path_factory) -> Path:
    """The default layout with a 1.5 s time limit, so a random planner's episodes are 15 steps at most."""
    raw = yaml.safe_load((LAYOUT_DIR / "default.yaml").read_text())
    raw.update(name="short", time_limit=1.5)
    path = tmp_path_factory.mktemp("layout") / "short.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    config = CoreConfig(model=ModelConfig(horizon=8, unet_dim=8, unet_dim_mults=(1, 2), diffusion_steps=10,
                                          n_quantiles=8, critic_hidden=16, idm_hidden=16),
                        planner=PlannerConfig(candidates=3, ddim_steps=2)).validate()
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_checkpoint(path, config, Normalizers.untrained_defaults(), build_networks(config.model))


@pytest.fixture(scope="module")
def tiny_bc(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 8, (64, 8)).astype(np.float32)
    policy, _ = behaviour_cloning.train(obs, rng.uniform(-1, 1, (64, 2)).astype(np.float32), steps=5, hidden=16,
                                        log=None)
    return behaviour_cloning.save(policy, tmp_path_factory.mktemp("bc") / "bc.safetensors")


def test_evaluation_command_writes_table_json_and_figures(tmp_path, short_layout, tiny_checkpoint, tiny_bc, capsys):
    out = tmp_path / "eval"
    settings = ["averse:0.1", "neutral", "seeking:0.1", "unguided", "bc", "scripted:detour"]
    rc = main(["--checkpoint", str(tiny_checkpoint), "--bc-checkpoint", str(tiny_bc), "--layout", str(short_layout),
               "--settings", *settings, "--episodes", "2", "--workers", "1", "--envs-per-worker", "2",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    names = ["averse:0.1", "neutral", "seeking:0.1", "unguided", "bc", "scripted:detour"]
    assert list(results["settings"]) == names
    for name in names:
        s = results["settings"][name]
        assert s["episodes"] == 2
        assert set(s["metrics"]) == set(METRICS)
        for m in s["metrics"].values():
            assert m["low"] <= m["value"] + 1e-9 and m["value"] <= m["high"] + 1e-9
        episodes = results["episodes"][name]
        assert [e["seed"] for e in episodes] == [0, 1]        # same env seeds in every setting
        assert all(1 <= e["length"] <= 15 for e in episodes)  # the 1.5 s time limit
    # One batched planner call per control step at least as often as the longest episode has steps,
    # and all of them inside the run's wall time: a wrong unit or count breaks the bound.
    wall_s = results["meta"]["wall_s"]
    for name in ("averse:0.1", "neutral", "seeking:0.1", "unguided"):
        longest = max(e["length"] for e in results["episodes"][name])
        ms = results["settings"][name]["plan_ms_per_call"]
        assert 0 < ms and ms * longest / 1e3 <= wall_s + 0.01, (name, ms, longest, wall_s)
    assert results["settings"]["bc"]["plan_ms_per_call"] is None
    assert results["settings"]["scripted:detour"]["plan_ms_per_call"] is None
    # The claims are check_claims' verdicts on the results' own metrics; every setting a claim needs was
    # run, so each is decided. Within 1.5 s from the start no robot gets near the goal 9 m away.
    summaries = {name: {k: Estimate(**m) for k, m in s["metrics"].items()} for name, s in results["settings"].items()}
    expected = [c.to_dict() for c in check_claims(parse_settings(names), summaries)]
    assert results["claims"] == expected and len(expected) == 5
    assert all(isinstance(c["holds"], bool) for c in results["claims"])
    assert not any(e["success"] for episodes in results["episodes"].values() for e in episodes)
    success_claim = next(c for c in results["claims"] if c["claim"].startswith("success rate"))
    assert success_claim["holds"] is False
    assert results["meta"]["checkpoint_sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert results["meta"]["episodes_per_minute"] == pytest.approx(len(names) * 2 / wall_s * 60, rel=0.01)
    md = (out / "results.md").read_text()
    assert "| unguided diffusion (`unguided`) | 2 |" in md and "CVaR_0.1 of return" in md
    for png in ("metrics_vs_alpha.png", "trajectories.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "violation rate (episodes)" in capsys.readouterr().out


def test_parallel_workers_give_every_episode_once(tmp_path, short_layout, tiny_checkpoint):
    out = tmp_path / "eval2"
    assert main(["--checkpoint", str(tiny_checkpoint), "--layout", str(short_layout), "--settings", "averse:0.5",
                 "scripted:shortcut", "--episodes", "3", "--workers", "2", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "results.json").read_text())
    for name in ("averse:0.5", "scripted:shortcut"):
        assert [e["episode"] for e in results["episodes"][name]] == [0, 1, 2]


def test_lockstep_batches_give_the_same_episodes_as_one_env_at_a_time():
    import gymnasium
    import risky_nav
    from rs_diffuser_ros.eval.lockstep import run_lockstep
    from rs_diffuser_ros.eval.policies import ScriptedBatchPolicy

    def run(n_envs):
        envs = [gymnasium.make(risky_nav.ENV_ID, layout="default", disable_env_checker=True) for _ in range(n_envs)]
        try:
            policy = ScriptedBatchPolicy("shortcut", envs[0].unwrapped.layout, n_envs)
            return run_lockstep(envs, policy, "scripted:shortcut", [(i, 100 + i) for i in range(5)])
        finally:
            for env in envs:
                env.close()

    one, three = run(1), run(3)
    assert [o.episode for o in three] == list(range(5))
    for a, b in zip(one, three):
        assert (a.episode_return, a.length, a.risk_events, a.risky_steps) == (b.episode_return, b.length, b.risk_events, b.risky_steps)
        np.testing.assert_array_equal(a.path, b.path)
    assert all(o.success and o.entered_risky_region for o in one)   # the short cut crosses the passage


@pytest.mark.parametrize("args, message", [
    (["--settings", "averse:2"], "alpha must be in"),
    (["--settings", "neutral", "--checkpoint", "/nonexistent.safetensors"], "no such file"),
    (["--settings", "bc", "--bc-checkpoint", "/nonexistent.safetensors"], "behaviour cloning checkpoint /nonexistent.safetensors not found"),
    (["--settings", "scripted:detour", "--layout", "atlantis"], "unknown layout 'atlantis'"),
    (["--settings", "scripted:detour", "--episodes", "0"], "episodes must be >= 1"),
])
def test_bad_arguments_exit_with_a_message(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as err:
        main(args + ["--out", str(tmp_path / "x"), "--no-progress"])
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_demo_prints_the_table_and_writes_the_picture(tmp_path, short_layout, tiny_checkpoint, capsys):
    from rs_diffuser_ros import demo

    out = tmp_path / "demo"
    assert demo.main(["--checkpoint", str(tiny_checkpoint), "--layout", str(short_layout), "--episodes", "1",
                      "--workers", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "averse alpha=0.05 (`averse:0.05`)" in printed and "neutral (alpha=1) (`neutral`)" in printed
    assert str((out / "trajectories.png").resolve()) in printed
    assert (out / "trajectories.png").read_bytes()[:4] == b"\x89PNG"


def test_demo_without_the_model_says_where_it_should_be(tmp_path, capsys):
    from rs_diffuser_ros import demo

    assert demo.main(["--checkpoint", str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "d")]) == 2
    assert "none.safetensors not found" in capsys.readouterr().err


def test_suite_runs_every_layout_and_summarises_the_claims(tmp_path, short_layout, tiny_checkpoint):
    from rs_diffuser_ros.eval import suite

    other = tmp_path / "other.yaml"
    other.write_text(short_layout.read_text().replace("name: short", "name: other"))
    out = tmp_path / "bench"
    assert suite.main(["--runs", f"{short_layout}={tiny_checkpoint}", f"{other}={tiny_checkpoint}",
                       "--settings", "averse:0.1", "neutral", "--episodes", "1", "--workers", "1",
                       "--out", str(out), "--no-progress"]) == 0
    summary = (out / "summary.md").read_text()
    assert f"`{short_layout}`" in summary and f"`{other}`" in summary
    assert "averse alpha=0.1: violation rate at most half of alpha=1's" in summary
    for name in ("short", "other"):
        assert (out / name / "results.json").is_file() and (out / name / "trajectories.png").is_file()
    # The second layout starts where the first one's seeds end: the two share no risk-event draws.
    seeds = {name: json.loads((out / name / "results.json").read_text())["meta"]["seed"] for name in ("short", "other")}
    assert seeds == {"short": 0, "other": 1}
    with pytest.raises(SystemExit, match="must be LAYOUT=PATH"):
        suite.main(["--runs", "default", "--out", str(out)])


def test_bad_files_and_planner_overrides_fail_before_any_episode(tmp_path, capsys, tiny_checkpoint):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    cases = [
        (["--settings", "neutral", "--checkpoint", str(junk)], "not a readable safetensors checkpoint"),
        (["--settings", "bc", "--bc-checkpoint", str(junk)], "junk.safetensors: not a readable safetensors file"),
        (["--settings", "neutral", "--checkpoint", str(tiny_checkpoint), "--candidates", "5000"],
         "candidates must be in [0, 1024], got 5000"),
        (["--settings", "neutral", "--checkpoint", str(tiny_checkpoint), "--ddim-steps", "500"],
         "ddim_steps must be at most the model's diffusion steps"),
        (["--settings", "neutral", "--checkpoint", str(tiny_checkpoint), "--use-costmap", "maybe"],
         "expected true or false, got 'maybe'"),
    ]
    for args, message in cases:
        with pytest.raises(SystemExit):
            main(args + ["--out", str(tmp_path / "x"), "--no-progress"])
        assert message in capsys.readouterr().err


def test_killing_the_evaluation_stops_its_workers(tmp_path, short_layout, tiny_checkpoint):
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "rs_diffuser_ros.eval", "--checkpoint", str(tiny_checkpoint),
                             "--layout", str(short_layout), "--settings", "scripted:detour", "--episodes", "5000",
                             "--workers", "2", "--out", str(tmp_path / "k"), "--no-progress"],
                            cwd=Path(__file__).resolve().parents[1])
    try:
        workers = []
        for _ in range(300):  # wait for both spawned workers
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            workers = [int(pid) for pid in out
                       if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="ignore")]
            if len(workers) == 2:
                break
            time.sleep(0.2)
        assert len(workers) == 2
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        for pid in workers:
            for _ in range(50):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.2)
            assert not Path(f"/proc/{pid}").exists(), f"worker {pid} outlived the killed evaluation"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_planner_workers_may_step_their_envs_in_processes_of_their_own(tmp_path, short_layout, tiny_checkpoint):
    """--workers 2 --env-workers 2: each planner process starts env processes (GPU machines run this way);
    the episodes are the ones the in-process run gives."""
    def run(*extra):
        out = tmp_path / "_".join(extra)
        assert main(["--checkpoint", str(tiny_checkpoint), "--layout", str(short_layout), "--settings", "neutral",
                     "--episodes", "4", "--out", str(out), "--no-progress", *extra]) == 0
        return json.loads((out / "results.json").read_text())["episodes"]["neutral"]

    in_process, with_env_workers = run("--workers", "2"), run("--workers", "2", "--env-workers", "2")
    assert [(e["episode"], e["length"], e["episode_return"]) for e in with_env_workers] == \
        [(e["episode"], e["length"], e["episode_return"]) for e in in_process]


def test_workers_share_out_the_gpus(monkeypatch):
    import torch

    from rs_diffuser_ros.eval.runner import worker_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [worker_device("cuda", i) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert worker_device("cuda:1", 0) == "cuda:1" and worker_device("cpu", 3) == "cpu"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert worker_device("cuda", 3) == "cuda"


def test_the_start_up_is_reported_apart_from_the_rate_after_it(tmp_path, short_layout, monkeypatch):
    # Issue 13: a GPU run's spawn, env creation and model load are a fixed cost; the meta gives it and the rate
    # once every worker steps. A slow env start-up (0.4 s here) must land in startup_s, not after it.
    import time as time_module

    from rs_diffuser_ros.eval import runner
    real = runner.make_env_batch

    def slow_envs(*args, **kwargs):
        time_module.sleep(0.4)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "make_env_batch", slow_envs)
    out = tmp_path / "eval"
    assert main(["--layout", str(short_layout), "--settings", "scripted:detour", "scripted:shortcut", "--episodes", "3",
                 "--workers", "1", "--envs-per-worker", "3", "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / "results.json").read_text())["meta"]
    assert 0.4 <= meta["startup_s"] < meta["wall_s"]
    after = meta["wall_s"] - meta["startup_s"]  # both rounded to 0.01 s: the rate is bounded, not exact
    assert 6 / (after + 0.011) * 60 <= meta["episodes_per_minute_after_startup"] <= 6 / max(after - 0.011, 1e-3) * 60
    assert meta["episodes_per_minute_after_startup"] > meta["episodes_per_minute"]  # the 0.4 s is out of it
    assert "Start-up" in (out / "results.md").read_text()


def test_a_failing_planner_is_reported_with_its_own_words(tmp_path, short_layout, tiny_checkpoint, monkeypatch):
    """A planner that raises stops the robot (plan_failed) and the report quotes the exception once per setting, so a
    failure seen only on another machine (a GPU) can be read from its results, not just counted."""
    from rs_diffuser_ros.core.planner import RiskSensitivePlanner

    def broken(self, *args, **kwargs):
        raise RuntimeError("captured graph returned garbage (test)")

    monkeypatch.setattr(RiskSensitivePlanner, "plan_batch", broken)
    out = tmp_path / "eval"
    rc = main(["--checkpoint", str(tiny_checkpoint), "--layout", str(short_layout), "--settings", "seeking:0.1",
               "--episodes", "2", "--workers", "1", "--envs-per-worker", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    s = json.loads((out / "results.json").read_text())["settings"]["seeking:0.1"]
    assert s["controller_stops"]["plan_failed"] >= 2  # every command of both robots
    assert "captured graph returned garbage (test)" in s["controller_stop_examples"]["plan_failed"]
    md = (out / "results.md").read_text()
    assert "First `plan_failed` of `seeking:0.1`: RuntimeError: captured graph returned garbage (test)" in md
