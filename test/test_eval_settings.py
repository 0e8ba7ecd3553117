"""Parsing of evaluation settings: canonical names, and errors that say what was wrong."""
import pytest

from rs_diffuser_ros.baselines.diffusion_variants import UNGUIDED_PLANNER_SETTINGS
from rs_diffuser_ros.eval.settings import SettingError, parse_setting, parse_settings


def test_planner_settings():
    s = parse_setting("averse:0.05")
    assert (s.name, s.kind, s.alpha, s.risk_mode) == ("averse:0.05", "planner", 0.05, "averse")
    assert s.is_rs_diffuser and not s.is_baseline and s.uses_planner
    assert parse_setting("seeking:0.1").risk_mode == "seeking"
    # alpha = 1 is neutral in both modes: one setting, not three names for it
    assert parse_setting("averse:1").name == parse_setting("seeking:1.0").name == parse_setting("neutral:1.0").name == "neutral"


def test_baseline_settings():
    u = parse_setting("unguided")
    assert u.kind == "planner" and u.controller_overrides == UNGUIDED_PLANNER_SETTINGS
    assert u.is_baseline and not u.is_rs_diffuser and u.uses_planner
    assert u.controller_overrides["guidance_scale"] == 0.0 and u.controller_overrides["candidates"] == 1
    # A run's route candidates and carried plan do not reach it: its one candidate would be the way round's
    # follower or last tick's plan, not a sample.
    from rs_diffuser_ros.eval.runner import EvalConfig
    run = EvalConfig([u], layout="default", controller_overrides={"route_candidates": 8, "carry_plan": True})
    unguided = run.controller_settings(u)
    assert (unguided.route_candidates, unguided.carry_plan, unguided.candidates) == (0, False, 1)
    assert run.controller_settings(parse_setting("averse:0.1")).route_candidates == 8
    bc = parse_setting("bc")
    assert (bc.kind, bc.checkpoint, bc.is_baseline, bc.uses_planner) == ("behaviour_cloning", None, True, False)
    assert str(parse_setting("bc:runs/bc/policy.safetensors").checkpoint) == "runs/bc/policy.safetensors"
    scripted = parse_setting("scripted:detour")
    assert (scripted.policy, scripted.is_baseline, scripted.is_rs_diffuser) == ("detour", False, False)


@pytest.mark.parametrize("text, message", [
    ("averse", "needs an alpha"),
    ("averse:", "needs an alpha"),
    ("averse:abc", "'abc' is not a number"),
    ("averse:0", r"must be in \(0, 1\]"),
    ("seeking:1.5", r"must be in \(0, 1\]"),
    ("averse:nan", r"must be in \(0, 1\]"),
    ("neutral:0.5", "neutral means alpha = 1"),
    ("unguided:0.3", "takes no argument"),
    ("bc:", "needs a path"),
    ("scripted:teleport", "scripted needs one of"),
    ("cautious:0.1", "unknown kind 'cautious'"),
])
def test_bad_settings_name_the_setting_and_the_problem(text, message):
    with pytest.raises(SettingError, match=message) as err:
        parse_setting(text)
    assert repr(text) in str(err.value)


def test_duplicates_and_empty_lists_are_refused():
    with pytest.raises(SettingError, match="repeats"):
        parse_settings(["neutral", "averse:1.0"])
    with pytest.raises(SettingError, match="no settings"):
        parse_settings([])
