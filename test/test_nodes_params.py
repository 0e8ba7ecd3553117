"""The planner node's parameters: derived from the settings' specs, validated with reasons, YAML = code defaults."""
from pathlib import Path

import pytest
import yaml
from rcl_interfaces.msg import ParameterType

from rs_diffuser_ros.control.settings import MODEL_OWN, ControllerSettings
from rs_diffuser_ros.core.config import CoreConfig, PlannerConfig
from rs_diffuser_ros.nodes.planner_params import PARAMETERS, NodeSettings, check_parameter, descriptor, resolve_checkpoint
from rs_diffuser_ros.shipped import model_path

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name,value,fragment", [
    ("alpha", 0.0, "(0, 1]"),
    ("alpha", 1.5, "(0, 1]"),
    ("risk_mode", "bold", "averse, seeking"),
    ("device", "tpu", "auto, cuda, cpu"),
    ("guidance_scale", -0.5, "[0, 1000] or -1"),
    ("candidates", 2000, "[0, 1024]"),
    ("costmap_timeout_s", -1.0, "[0, 3600]"),
    ("unknown_is_obstacle", "yes", "true or false"),
    ("checkpoint", "/nonexistent/model.safetensors", "/nonexistent/model.safetensors"),
])
def test_invalid_values_are_refused_with_a_reason(name, value, fragment):
    reason = check_parameter(name, value)
    assert reason is not None and fragment in reason, reason


@pytest.mark.parametrize("name,value", [("alpha", 1.0), ("alpha", 0.05), ("risk_mode", "seeking"),
                                        ("device", "cpu"), ("guidance_scale", -1.0), ("guidance_scale", 0.0),
                                        ("checkpoint", ""), ("costmap_timeout_s", 0.0)])
def test_valid_values_pass(name, value):
    assert check_parameter(name, value) is None


def test_code_defaults_equal_config_planner_yaml():
    """The node started without the YAML behaves as with it: every default equals the shipped value."""
    values = yaml.safe_load((REPO / "config" / "planner.yaml").read_text())["planner"]["ros__parameters"]
    assert set(values) == set(PARAMETERS)
    assert {name: default for name, (default, _) in PARAMETERS.items()} == values


def test_descriptors_come_from_the_specs():
    """Range, help and read-only of a parameter are the setting's own, declared once on its field."""
    alpha_spec = PlannerConfig.__dataclass_fields__["alpha"].metadata["spec"]
    d = descriptor(*PARAMETERS["alpha"])
    assert d.description == alpha_spec.help and not d.read_only
    assert (d.floating_point_range[0].from_value, d.floating_point_range[0].to_value) == (0.0, 1.0)
    d = descriptor(*PARAMETERS["guidance_scale"])  # the range admits the -1 sentinel
    assert d.floating_point_range[0].from_value == -1.0
    d = descriptor(*PARAMETERS["candidates"])
    assert d.type == ParameterType.PARAMETER_INTEGER and d.integer_range[0].to_value == 1024
    assert descriptor(*PARAMETERS["replan_rate_hz"]).read_only
    assert descriptor(*PARAMETERS["risk_mode"]).additional_constraints == "one of: averse, seeking"
    assert set(PARAMETERS) == set(ControllerSettings.__dataclass_fields__) | set(NodeSettings.__dataclass_fields__)


def test_sampling_uses_the_models_own_settings_unless_overridden():
    model = {"candidates": 32, "ddim_steps": 8, "guidance_scale": 1.0, "route_candidates": 4, "route_risk_margin_m": 0.2}
    assert ControllerSettings().sampling(model) == model
    assert ControllerSettings(candidates=8, guidance_scale=0.0, route_candidates=0,
                              route_risk_margin_m=0.4).sampling(model) == {
        "candidates": 8, "ddim_steps": 8, "guidance_scale": 0.0, "route_candidates": 0, "route_risk_margin_m": 0.4}
    assert set(MODEL_OWN) == set(model)


def test_ddim_steps_are_checked_against_the_model():
    config = CoreConfig()
    config.model.diffusion_steps = 100
    assert ControllerSettings(ddim_steps=50).check_with(config) is None
    config.model.diffusion_steps = 20
    assert "at most the model's diffusion steps (20)" in ControllerSettings(ddim_steps=50).check_with(config)


def test_route_candidates_are_checked_against_the_model():
    per_map = CoreConfig()  # no map: route candidates have no ways to follow
    assert ControllerSettings(route_candidates=0).check_with(per_map) is None
    assert ControllerSettings().check_with(per_map) is None  # -1: the model's own, 0
    assert "needs a map-conditioned robot model" in ControllerSettings(route_candidates=8).check_with(per_map)
    general = CoreConfig()
    general.model.map_patch_cells, general.model.map_safe_distance = 32, True
    assert ControllerSettings(route_candidates=8).check_with(general) is None


def test_empty_checkpoint_means_the_packaged_default_the_general_model():
    assert resolve_checkpoint("") == model_path()
    assert model_path().name == "general.safetensors" and model_path().parent.name == "models"
    assert model_path().is_file()
