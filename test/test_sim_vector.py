"""Env batches: the same results as stepping the envs one by one; workers end on close, error,
kill, Ctrl-C and parent death, and a failing worker is named."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest
import yaml

import risky_nav

from risky_nav.env import RiskyNavEnv
from risky_nav.layout import LAYOUT_DIR, parse_layout
from risky_nav.vector import EnvWorkerError, ProcessEnvBatch, SerialEnvBatch, make_env_batch

N_ENVS, STEPS, HOLD = 5, 160, 6


def short_risky_layout(name: str):
    """A shipped layout with a 5 s time limit and p = 0.5, so short runs truncate and meet risk."""
    raw = yaml.safe_load((LAYOUT_DIR / f"{name}.yaml").read_text())
    raw["time_limit"] = 5.0
    for region in raw["risky_regions"]:
        region["p"] = 0.5
    return parse_layout(raw, source=f"short {name}")


LAYOUTS = [short_risky_layout("default"), short_risky_layout("narrow_corridor"), "default",
           short_risky_layout("two_risks"), short_risky_layout("default")]
# Slot 2 starts in the risky passage and slot 1 at the top left, so risk and walls come early.
OPTIONS = [{"start": [4.5, 4.0, 0.0], "goal": [10.5, 4.0]}, {"start_anywhere": True}, None, None,
           {"start": [0.5, 7.5, 2.0], "goal": [10.5, 4.0]}]


def _plan():
    """Per step: the slots to step (some skipped now and then) and their actions, held for HOLD steps."""
    rng = np.random.default_rng(5)
    held = rng.uniform(-1.2, 1.2, (N_ENVS, 2)) + [0.5, 0.0]
    for t in range(STEPS):
        if t % HOLD == 0:
            held = rng.uniform(-1.2, 1.2, (N_ENVS, 2)) + [0.5, 0.0]
        slots = [s for s in range(N_ENVS) if (t + s) % 7 != 0]
        yield slots, held[slots].astype(np.float32)


def _run_envs_one_by_one():
    envs = [RiskyNavEnv(layout) for layout in LAYOUTS]
    next_seed, rows = 100, []
    for slot, env in enumerate(envs):
        obs, info = env.reset(seed=slot, options=OPTIONS[slot])
        rows.append(("reset", slot, obs, info["in_risky_region"]))
    for slots, actions in _plan():
        for slot, action in zip(slots, actions):
            obs, reward, terminated, truncated, info = envs[slot].step(action)
            rows.append(("step", slot, obs, reward, terminated, truncated, info["collision"],
                         info["in_risky_region"], info["risk_event"], info["risk_penalty"]))
        done = [row[1] for row in rows[-len(slots):] if row[4] or row[5]]
        for slot in done:
            obs, info = envs[slot].reset(seed=next_seed, options=OPTIONS[slot])
            rows.append(("reset", slot, obs, info["in_risky_region"]))
            next_seed += 1
    for env in envs:
        env.close()
    return rows


def _run_batch(batch):
    next_seed, rows = 100, []
    obs, infos = batch.reset(list(range(N_ENVS)), seeds=list(range(N_ENVS)), options=OPTIONS)
    rows += [("reset", slot, obs[slot], infos["in_risky_region"][slot]) for slot in range(N_ENVS)]
    for slots, actions in _plan():
        obs, reward, terminated, truncated, infos = batch.step(actions, slots)
        for row, slot in enumerate(slots):
            rows.append(("step", slot, obs[row], reward[row], terminated[row], truncated[row],
                         infos["collision"][row], infos["in_risky_region"][row], infos["risk_event"][row],
                         infos["risk_penalty"][row]))
        done = [slot for row, slot in enumerate(slots) if terminated[row] or truncated[row]]
        if done:
            seeds = list(range(next_seed, next_seed + len(done)))
            obs, infos = batch.reset(done, seeds, [OPTIONS[slot] for slot in done])
            rows += [("reset", slot, obs[row], infos["in_risky_region"][row]) for row, slot in enumerate(done)]
            next_seed += len(done)
    batch.close()
    return rows


def _assert_same(reference, rows):
    assert len(rows) == len(reference)
    for expected, actual in zip(reference, rows):
        assert expected[:2] == actual[:2]
        np.testing.assert_array_equal(expected[2], actual[2])
        assert [type(v)(w) for v, w in zip(expected[3:], actual[3:])] == list(expected[3:])


@pytest.fixture(scope="module")
def reference():
    rows = _run_envs_one_by_one()
    steps = [r for r in rows if r[0] == "step"]
    # Not vacuous: episodes end and restart, walls are hit, risk strikes.
    assert sum(r[0] == "reset" for r in rows) >= N_ENVS + 5
    assert sum(r[6] for r in steps) >= 5 and sum(r[8] for r in steps) >= 5
    return rows


def test_serial_batch_matches_envs_stepped_one_by_one(reference):
    _assert_same(reference, _run_batch(SerialEnvBatch(N_ENVS, LAYOUTS)))


def test_a_batch_over_gymnasium_made_envs_matches_and_leaves_them_open(reference):
    envs = [gym.make(risky_nav.ENV_ID, layout=layout, disable_env_checker=True) for layout in LAYOUTS]
    _assert_same(reference, _run_batch(SerialEnvBatch.from_envs(envs)))
    envs[0].reset(seed=0)                      # still usable: the batch did not close what it did not make
    for env in envs:
        env.close()


def test_process_batch_matches_envs_stepped_one_by_one(reference):
    batch = ProcessEnvBatch(N_ENVS, workers=2, layout=LAYOUTS)
    pids = batch.worker_pids
    _assert_same(reference, _run_batch(batch))
    assert not any(_alive(pid) for pid in pids)


def test_make_env_batch_picks_the_implementation():
    with make_env_batch(2, workers=1) as serial:
        assert isinstance(serial, SerialEnvBatch) and serial.num_envs == len(serial) == 2
    with pytest.raises(ValueError, match="workers must be >= 0"):
        make_env_batch(2, workers=-1)


def test_bad_arguments_are_refused_with_what_was_wrong():
    with SerialEnvBatch(3) as batch:
        batch.reset(seeds=[0, 1, 2])
        with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
            batch.step(np.zeros((3, 2)), slots=[0, 1])
        with pytest.raises(ValueError, match="finite"):
            batch.step([[np.nan, 0.0]], slots=[1])
        with pytest.raises(ValueError, match=r"integers in \[0, 3\)"):
            batch.step([[0.0, 0.0]], slots=[3])
        with pytest.raises(ValueError, match="must not repeat"):
            batch.step(np.zeros((2, 2)), slots=[1, 1])
        with pytest.raises(ValueError, match="2 seeds for 3 slots"):
            batch.reset(seeds=[0, 1])
    with pytest.raises(ValueError, match="2 layouts for 3 envs"):
        SerialEnvBatch(3, ["default", "default"])
    with pytest.raises(ValueError, match=r"workers must be in \[1, n_envs=2\]"):
        ProcessEnvBatch(2, workers=3)
    with pytest.raises(ValueError, match="unknown layout 'atlantis'"):   # in this process, before any spawn
        ProcessEnvBatch(2, workers=2, layout="atlantis")


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids, seconds=15.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_an_error_in_a_worker_names_it_and_closes_the_batch():
    batch = ProcessEnvBatch(4, workers=2)
    pids = batch.worker_pids
    batch.reset(seeds=[0, 1, 2, 3])
    with pytest.raises(EnvWorkerError, match=r"(?s)env worker 1 \(pid \d+, slots 2\.\.3\) failed reset.*is not free"):
        batch.reset([3], seeds=[0], options={"start": [6.0, 1.0], "goal": [10.5, 4.0]})   # inside an obstacle
    assert _wait_gone(pids) == []
    with pytest.raises(RuntimeError, match="is closed"):
        batch.step(np.zeros((4, 2)))


def test_a_killed_worker_is_named_with_its_signal():
    batch = ProcessEnvBatch(4, workers=2)
    pids = batch.worker_pids
    batch.reset(seeds=[0, 1, 2, 3])
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(EnvWorkerError, match=r"env worker 0 \(pid \d+, slots 0\.\.1\) was killed by signal 9 while step"):
        batch.step(np.zeros((4, 2)))
    assert _wait_gone(pids) == []


_CHILD = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from risky_nav.vector import ProcessEnvBatch
    if __name__ == "__main__":
        with ProcessEnvBatch(4, workers=2) as batch:
            batch.reset(seeds=[0, 1, 2, 3])
            print(*batch.worker_pids, flush=True)
            if sys.argv[1] == "die":
                os.kill(os.getpid(), signal.SIGKILL)     # no finally, no atexit: only the pipes close
            while True:
                batch.step(np.zeros((4, 2)))
""")


def _default_sigint() -> None:
    """In the child before exec: Ctrl-C as a terminal's process gets it. A blocked or ignored SIGINT is
    inherited across exec, and earlier tests in this pytest process (an rclpy context) may leave it so:
    the child would then never see the Ctrl-C this test sends (seen in full-suite runs only)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["die", "ctrl-c"])
def test_workers_end_when_the_parent_dies_or_is_interrupted(tmp_path, how):
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    child = subprocess.Popen([sys.executable, str(script), how], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, preexec_fn=_default_sigint)
    try:
        line = ""
        while not line.strip() or not line.split()[0].isdigit():
            line = child.stdout.readline()
            assert line or child.poll() is None, child.stderr.read()
        pids = [int(p) for p in line.split()]
        assert all(_alive(p) for p in pids)
        if how == "ctrl-c":
            time.sleep(0.5)
            os.killpg(child.pid, signal.SIGINT)           # what a terminal sends: the whole group
        # communicate, not wait: it drains the pipes, so a child (or its workers, whose tracebacks share its
        # stderr) never blocks on a full pipe while we wait. 60 s: a liveness bound for a loaded 2-core box.
        _, stderr = child.communicate(timeout=60)
        assert _wait_gone(pids) == []
        if how == "ctrl-c":
            assert "KeyboardInterrupt" in stderr
    finally:
        if child.poll() is None:
            child.kill()
