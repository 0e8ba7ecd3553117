"""The Risky PointMass evaluation: CODAC's protocol (eval starts, same seeds per setting), metrics per episode."""
import numpy as np
import pytest

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
