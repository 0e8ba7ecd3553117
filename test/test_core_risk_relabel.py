"""Risk-event relabelling (core/training/risk_relabel.py, sim risky_nav/risk_exposure.py): what a recorded path was
exposed to is read back exactly as the sim drew it, and the critic's targets are that path's return with the events
drawn afresh, nothing else changed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from risky_nav.env import RiskyNavEnv
from risky_nav.layout import Box, RiskyRegion, load_layout
from risky_nav.policies import make_policy
from risky_nav.risk_exposure import observed_penalties, region_exposure
from rs_diffuser_ros.core.training.risk_relabel import RiskEventRelabel
from rs_diffuser_ros.core.training.train import train
from rs_diffuser_ros.core.training.windows import WindowDataset
from test_core_helpers import synthetic_episodes, tiny_config, single_thread  # noqa: F401 (autouse fixture)


def _overlapping_layout():
    """The default layout with two overlapping risky boxes on the straight route and frequent events."""
    layout = load_layout("default")
    return dataclasses.replace(layout, risky_regions=(
        RiskyRegion("wide", Box(6.0, 4.0, 4.0, 2.2), p=0.3, penalty=3.0),
        RiskyRegion("core", Box(6.0, 4.0, 1.5, 2.2), p=0.3, penalty=7.0)))


def test_region_exposure_gives_each_regions_p_and_c_only_inside_its_box():
    layout = _overlapping_layout()
    p, c = region_exposure(layout, np.array([[1.0, 4.0], [4.5, 4.0], [6.0, 4.0], [8.0, 5.1], [8.0, 5.2]]))
    np.testing.assert_allclose(p, [[0, 0], [0.3, 0], [0.3, 0.3], [0.3, 0], [0, 0]])
    np.testing.assert_allclose(c, [[0, 0], [3, 0], [3, 7], [3, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"positions must be \[T, 2\]"):
        region_exposure(layout, np.zeros((3, 3)))


def test_exposure_and_paid_penalties_read_back_what_the_sim_drew_on_overlapping_regions():
    """Driven through the sim: the in-region flags and every step's paid penalty (one box, the other or both)
    are recovered from the recorded positions, flags and rewards alone."""
    layout = _overlapping_layout()
    env = RiskyNavEnv(layout)
    try:
        paid_by_sim, episodes = [], []
        for seed in range(3):
            policy = make_policy("shortcut", layout, np.random.default_rng(seed))
            obs, _ = env.reset(seed=seed)
            record = {k: [] for k in ("observations", "rewards", "risk_events", "collisions", "terminations",
                                      "in_risky_region")}
            record["observations"].append(obs)
            paid = []
            for _ in range(400):
                obs, reward, term, trunc, info = env.step(policy(obs))
                for k, v in (("observations", obs), ("rewards", reward), ("risk_events", info["risk_event"]),
                             ("collisions", info["collision"]), ("terminations", term),
                             ("in_risky_region", info["in_risky_region"])):
                    record[k].append(v)
                paid.append(info["risk_penalty"])
                if term or trunc:
                    break
            episodes.append({k: np.asarray(v) for k, v in record.items()})
            paid_by_sim.append(np.asarray(paid))
    finally:
        env.close()
    paid_all = np.concatenate(paid_by_sim)
    assert {3.0, 7.0, 10.0} <= set(np.round(paid_all, 6))  # each box alone and both together struck
    for ep, paid in zip(episodes, paid_by_sim):
        p, c = region_exposure(layout, ep["observations"][1:, :2].astype(np.float32), margin=1e-3)
        np.testing.assert_array_equal((p > 0).any(1), ep["in_risky_region"])
        np.testing.assert_allclose(observed_penalties(layout, ep, p, c), paid, atol=1e-9)


def test_an_event_outside_every_region_is_refused_naming_the_step():
    layout = load_layout("default")
    ep = {"observations": np.array([[1, 4, 0, 1, 0, 0, 10, 4], [1.1, 4, 0, 1, 0, 0, 10, 4]], np.float32),
          "rewards": np.array([-8.1]), "risk_events": np.array([True]), "collisions": np.array([False]),
          "terminations": np.array([False])}
    p, c = region_exposure(layout, ep["observations"][1:, :2])
    with pytest.raises(ValueError, match="step 0 records a risk event outside every risky region of default"):
        observed_penalties(layout, ep, p, c)


def _dataset_and_exposure(p_value: float, penalty: float = 5.0, observed_every: int = 0):
    """Synthetic episodes, every step inside one region (p_value, penalty); `observed_every` > 0: every such step
    paid the penalty in the recorded rewards."""
    episodes = synthetic_episodes(n=3, seed=1, max_steps=30)
    exposure = []
    for ep in episodes:
        t = len(ep["rewards"])
        observed = np.zeros(t)
        if observed_every:
            observed[::observed_every] = penalty
            ep["rewards"] = ep["rewards"] - observed
        exposure.append((np.full((t, 1), p_value), np.full((t, 1), penalty), observed))
    data = WindowDataset.from_episodes(episodes, horizon=8, gamma=1.0)
    return episodes, data, exposure


def test_relabelled_returns_take_off_the_recorded_events_and_draw_new_ones():
    episodes, data, exposure = _dataset_and_exposure(p_value=0.0, observed_every=3)
    relabel = RiskEventRelabel.from_exposure(data, exposure)
    rows = torch.arange(len(data))
    recorded = data.returns[data.starts]
    never = relabel.returns(data, rows)  # p = 0: no event is drawn, the recorded ones are gone
    remaining = (data.last - data.starts).double()
    paid_later = torch.cat([torch.as_tensor(np.cumsum(o[::-1])[::-1].copy()) for _, _, o in exposure])
    torch.testing.assert_close(never.double(), recorded.double() + paid_later, atol=1e-4, rtol=0)
    _, data1, exposure1 = _dataset_and_exposure(p_value=1.0, observed_every=3)
    always = RiskEventRelabel.from_exposure(data1, exposure1).returns(data1, rows)  # p = 1: every step pays
    torch.testing.assert_close(always.double(), never.double() - 5.0 * remaining, atol=1e-3, rtol=0)


def test_relabelled_returns_have_the_paths_event_distribution():
    _, data, exposure = _dataset_and_exposure(p_value=0.2)
    relabel = RiskEventRelabel.from_exposure(data, exposure)
    row = torch.tensor([0] * 20000)  # the first window: its whole episode lies ahead
    steps = int(data.last[0] - data.starts[0])
    draws = relabel.returns(data, row, torch.Generator().manual_seed(0)).double()
    events = (data.returns[data.starts[0]].double() - draws) / 5.0
    assert abs(events.mean().item() - 0.2 * steps) < 0.05 * steps  # binomial(steps, 0.2): mean ...
    assert abs(events.var().item() - 0.16 * steps) < 0.15 * 0.16 * steps  # ... and variance
    assert torch.all(events.round() == events)  # whole events only


def test_several_draws_a_window_are_independent_draws_of_the_same_distribution():
    _, data, exposure = _dataset_and_exposure(p_value=0.2)
    relabel = RiskEventRelabel.from_exposure(data, exposure)
    rows = torch.tensor([0, 1, 0])
    one = relabel.returns(data, rows, torch.Generator().manual_seed(3))
    first = relabel.returns(data, rows, torch.Generator().manual_seed(3), draws=1)
    assert first.shape == (3, 1) and torch.equal(first[:, 0], one)  # one draw: the single-draw returns
    many = relabel.returns(data, torch.tensor([0] * 500), torch.Generator().manual_seed(0), draws=40)
    assert many.shape == (500, 40)
    steps = int(data.last[0] - data.starts[0])
    events = (data.returns[data.starts[0]].double() - many.double()) / 5.0
    assert abs(events.mean().item() - 0.2 * steps) < 0.05 * steps  # binomial(steps, 0.2) in every column ...
    assert abs(events.var().item() - 0.16 * steps) < 0.15 * 0.16 * steps
    # ... and the columns of one window are not copies of each other.
    assert float(np.corrcoef(events[:, 0].numpy(), events[:, 1].numpy())[0, 1]) < 0.2
    assert (many[:, 0] != many[:, 1]).float().mean() > 0.5


def test_exposure_that_does_not_match_the_episodes_is_refused():
    _, data, exposure = _dataset_and_exposure(p_value=0.1)
    with pytest.raises(ValueError, match="observations"):
        RiskEventRelabel.from_exposure(data, exposure[:-1])
    p, c, o = exposure[0]
    with pytest.raises(ValueError, match="episode 0"):
        RiskEventRelabel.from_exposure(data, [(p[:-1], c[:-1], o[:-1])] + exposure[1:])


def test_training_with_relabelling_needs_the_exposure(tmp_path):
    config = tiny_config()
    config.training.relabel_risk_events = True
    with pytest.raises(ValueError, match="relabel_risk_events .* give risk_exposure"):
        train(config, synthetic_episodes(n=2), tmp_path / "run", device="cpu", progress=False)


def test_training_with_several_draws_a_window_needs_relabelling_and_runs(tmp_path):
    from rs_diffuser_ros.core.config import ConfigError

    config = tiny_config()
    config.training.relabel_draws = 4
    with pytest.raises(ConfigError, match="relabel_draws 4 .* needs training.relabel_risk_events"):
        config.validate()
    config.training.relabel_risk_events = True
    config.training.steps = 3
    episodes, _, exposure = _dataset_and_exposure(p_value=0.2)
    summary = train(config.validate(), episodes, tmp_path / "run", device="cpu", progress=False, risk_exposure=exposure)
    assert summary["steps"] == 3 and np.isfinite(summary["final_losses"]["critic"])


def test_a_collected_dataset_reads_back_its_exposure_and_every_paid_penalty(tmp_path):
    """Collected by the command line over generated maps: the exposure agrees with the recorded in-region flags, a
    penalty is paid exactly at the recorded events, and the risk-free return is the recorded one plus what was paid."""
    from risky_nav.collect import main as collect
    from rs_diffuser_ros.core.training.train import load_dataset_episodes, load_dataset_risk_exposure

    dataset = tmp_path / "riskynav" / "tiny-v0"
    assert collect(["--generate", "3", "--generate-seed", "21", "--episodes-per-map", "12", "--mix", "shortcut=1",
                    "--seed", "3", "--out", str(dataset)]) == 0
    episodes = load_dataset_episodes(str(dataset))
    exposure = load_dataset_risk_exposure(str(dataset), episodes)
    assert sum(int(e["risk_events"].sum()) for e in episodes) >= 2  # this seed's shortcuts meet events
    for ep, (p, c, paid) in zip(episodes, exposure):
        np.testing.assert_array_equal((p > 0).any(1), ep["in_risky_region"])
        np.testing.assert_array_equal(paid > 0, ep["risk_events"])
    data = WindowDataset.from_episodes(episodes, horizon=8, gamma=1.0)
    relabel = RiskEventRelabel.from_exposure(data, exposure)
    firsts = data.starts[torch.as_tensor(np.cumsum([0] + [len(e["rewards"]) for e in episodes[:-1]]))]
    torch.testing.assert_close(relabel.risk_free_returns[firsts] - data.returns[firsts],
                               torch.tensor([float(o.sum()) for _, _, o in exposure]), atol=1e-3, rtol=0)
