"""A checkpoint's stored planner settings are changed in a copy; its weights and everything else stay."""
import pytest
import torch

from rs_diffuser_ros.core.checkpoint import read_checkpoint
from rs_diffuser_ros.core.planner_defaults import main, parse_assignment, write_planner_defaults
from rs_diffuser_ros.shipped import GENERAL_MODEL, model_path


def test_the_copy_has_the_new_planner_settings_and_the_same_weights(tmp_path):
    src = model_path(GENERAL_MODEL)
    config, normalizers, weights, metadata = read_checkpoint(src)
    dst = write_planner_defaults(src, tmp_path / "m.safetensors", {"route_candidates": 3, "candidates": 16})
    new_config, new_normalizers, new_weights, new_metadata = read_checkpoint(dst)
    assert (new_config.planner.route_candidates, new_config.planner.candidates) == (3, 16)
    assert new_config.model == config.model and new_config.planner.alpha == config.planner.alpha
    assert new_normalizers.to_dict() == normalizers.to_dict()
    for name, state in weights.items():
        assert all(torch.equal(state[k], new_weights[name][k]) for k in state)
    assert new_metadata["planner_defaults_from"] == src.name and new_metadata["step"] == metadata["step"]


def test_a_bad_setting_is_refused_by_name_and_nothing_is_written(tmp_path, capsys):
    assert parse_assignment("route_candidates=8") == ("route_candidates", 8)
    assert parse_assignment("guidance_on=x0") == ("guidance_on", "x0")
    with pytest.raises(ValueError, match="NAME one of candidates"):
        parse_assignment("route_candidate=8")
    with pytest.raises(ValueError, match="'eight' is not a int"):
        parse_assignment("route_candidates=eight")
    dst = tmp_path / "m.safetensors"
    with pytest.raises(SystemExit):
        main([str(model_path(GENERAL_MODEL)), str(dst), "route_candidates=-3"])
    assert "planner.route_candidates must be in [0, 512], got -3" in capsys.readouterr().err
    assert not dst.exists()
