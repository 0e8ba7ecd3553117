"""The planner parameters' validation rules and the model's-own-setting sentinels (no DDS)."""
import pytest

from rs_diffuser_ros.nodes.planner_params import (MODEL_OWN, PARAMETERS, PlannerSettings, check_parameter,
                                                  default_checkpoint_path, resolve_checkpoint)


@pytest.mark.parametrize("name,value,fragment", [
    ("alpha", 0.0, "(0, 1]"),
    ("risk_mode", "bold", "averse, seeking"),
    ("device", "tpu", "auto, cuda, cpu"),
    ("guidance_scale", -0.5, "-1 for the model's own"),
    ("checkpoint", "/nonexistent/model.safetensors", "/nonexistent/model.safetensors"),
])
def test_invalid_values_are_refused_with_a_reason(name, value, fragment):
    reason = check_parameter(name, value)
    assert reason is not None and fragment in reason


@pytest.mark.parametrize("name,value", [("alpha", 1.0), ("alpha", 0.05), ("risk_mode", "seeking"),
                                        ("device", "cpu"), ("guidance_scale", -1.0), ("guidance_scale", 0.0),
                                        ("checkpoint", "")])
def test_valid_values_pass(name, value):
    assert check_parameter(name, value) is None


def test_every_default_is_valid():
    for name, (default, _) in PARAMETERS.items():
        if name == "device":
            continue  # "auto" is valid anywhere; checked above
        assert check_parameter(name, default) is None, name


def settings(**overrides):
    values = {name: default for name, (default, _) in PARAMETERS.items() if name in PlannerSettings.__dataclass_fields__}
    return PlannerSettings(**{**values, **overrides})


def test_sampling_uses_the_models_own_settings_unless_overridden():
    model = {"candidates": 32, "ddim_steps": 8, "guidance_scale": 1.0}
    assert settings().sampling(model) == model
    assert settings(candidates=8, guidance_scale=0.0).sampling(model) == {"candidates": 8, "ddim_steps": 8,
                                                                          "guidance_scale": 0.0}
    assert set(MODEL_OWN) == set(model)


def test_empty_checkpoint_means_the_packaged_default():
    assert resolve_checkpoint("") == default_checkpoint_path()
    assert default_checkpoint_path().name == "default.safetensors"
    assert default_checkpoint_path().parent.name == "models"
