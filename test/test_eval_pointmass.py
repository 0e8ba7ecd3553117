"""The Risky PointMass evaluation: CODAC's protocol (eval starts, same seeds per setting), metrics per episode;
RS-Diffuser's settings are policies beside the baselines."""
import json

import numpy as np
import pytest
import torch
from test_core_helpers import tiny_config

from rs_diffuser_ros.core.checkpoint import save_checkpoint
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.normalizer import Normalizers
from rs_diffuser_ros.eval import pointmass
from risky_pointmass.policies import make_policy


class ScriptedBatch:
    """A scripted policy behind the act(obs [B, 4]) interface the evaluation expects."""

    def __init__(self, name):
        self.policy = make_policy(name, np.random.default_rng(0))

    def act(self, obs):
        self.policy.reset(obs[0])
        return np.stack([self.policy(o) for o in obs])


def test_straight_and_detour_are_told_apart_with_the_same_starts(tmp_path):
    outcomes = pointmass.evaluate({"straight": ScriptedBatch("straight"), "detour": ScriptedBatch("detour")},
                                  episodes=20, seed=3)
    straight, detour = outcomes["straight"], outcomes["detour"]
    for s, d in zip(straight, detour):
        assert s.seed == d.seed and np.array_equal(s.path[0], d.path[0])
        assert 0.8 <= s.path[0][0] <= 0.85 and 0.8 <= s.path[0][1] <= 0.85        # the evaluation start
    assert all(o.entered_risky_region and o.success for o in straight)
    assert not any(o.entered_risky_region or o.risk_events for o in detour)
    assert sum(o.risk_events for o in straight) == sum(int(o.event_steps.sum()) for o in straight)
    summary = pointmass.markdown_table({k: pointmass.summarize(v) for k, v in outcomes.items()})
    assert summary.count("\n") == 3 and "collision" not in summary


def test_cli_refuses_an_unknown_kind(tmp_path):
    with pytest.raises(SystemExit):
        pointmass.main(["--policy", "diffuser=x.safetensors", "--out", str(tmp_path)])


def _point_mass_model(path, **model):
    """An RS-Diffuser file of the point mass's layout (state [x, y], goal [goal_x, goal_y]), random weights."""
    config = tiny_config()
    config.model.state_dim, config.model.goal_dim = 2, 2
    for key, value in model.items():
        setattr(config.model, key, value)
    torch.manual_seed(0)
    save_checkpoint(path, config.validate(), Normalizers.untrained_defaults(config.model), build_networks(config.model))
    return path


def test_rs_diffuser_settings_are_policies_that_run_episodes(tmp_path):
    model = _point_mass_model(tmp_path / "model.safetensors")
    averse = pointmass.load_policy("averse:0.1", model)
    assert (averse.alpha, averse.risk_mode) == (0.1, "averse") and averse.planner.config.planner.candidates == 4
    unguided = pointmass.load_policy("unguided", model)
    assert unguided.planner.config.planner.candidates == 1 and unguided.planner.config.planner.guidance_scale == 0
    obs = np.array([[0.8, 0.82, 0.1, 0.1], [0.3, 0.2, 0.1, 0.1]], np.float32)
    actions = averse.act(obs)
    assert actions.shape == (2, 2) and np.isfinite(actions).all()

    from risky_pointmass.env import RiskyPointMassEnv
    outcome = pointmass.run_episode(RiskyPointMassEnv(), averse, "averse:0.1", 0, seed=5)
    assert 1 <= outcome.length <= 100 and outcome.path.shape == (outcome.length + 1, 2)
    assert 0.8 <= outcome.path[0][0] <= 0.85 and np.isfinite(outcome.episode_return)


def test_cli_evaluates_rs_diffuser_beside_a_baseline_and_refuses_a_robot_model(tmp_path):
    model = _point_mass_model(tmp_path / "model.safetensors")
    out = tmp_path / "eval"
    assert pointmass.main(["--policy", f"averse:0.1={model}", "--policy", f"neutral={model}", "--policy", f"unguided={model}",
                           "--episodes", "2", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["settings"]) == ["averse:0.1", "neutral", "unguided"]
    assert results["settings"]["averse:0.1"]["kind"] == "rs_diffuser" and results["settings"]["neutral"]["alpha"] == 1.0
    assert [e["seed"] for e in results["episodes"]["unguided"]] == [0, 1]
    with pytest.raises(ValueError, match="not a Risky PointMass model"):
        pointmass.load_policy("neutral", _point_mass_model(tmp_path / "robot.safetensors", state_dim=6))
    with pytest.raises(SystemExit):
        pointmass.main(["--policy", f"averse:2={model}", "--out", str(out)])
