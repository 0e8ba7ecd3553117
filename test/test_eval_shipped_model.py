"""The shipped model, closed loop through the shipped controller, on the default layout: the one
behaviour the package promises. Eight seeded episodes per setting (seeds 100-107, not used to tune
anything): at alpha = 0.05 the robot never enters the risky passage; at alpha = 1 it does in most."""
from rs_diffuser_ros.eval.runner import EvalConfig, evaluate
from rs_diffuser_ros.eval.settings import parse_settings

EPISODES, SEED = 8, 100


def test_alpha_005_avoids_the_risky_region_and_alpha_1_mostly_takes_it():
    config = EvalConfig(settings=parse_settings(["averse:0.05", "neutral"]), layout="default",
                        episodes=EPISODES, seed=SEED, workers=1)
    run = evaluate(config, progress=False)
    cautious, neutral = run.outcomes["averse:0.05"], run.outcomes["neutral"]
    assert [o.risky_steps for o in cautious] == [0] * EPISODES
    assert sum(o.risky_steps > 0 for o in neutral) > EPISODES // 2
    assert all(o.success for o in cautious + neutral)
