"""Checkpoints: round trip, no pickle, clear errors for missing / corrupt / mismatched files."""
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_core_helpers import tiny_config, single_thread  # noqa: F401 (autouse fixture)

from rs_diffuser_ros.core.checkpoint import FORMAT, CheckpointError, read_checkpoint, save_checkpoint
from rs_diffuser_ros.core.models.networks import build_networks
from rs_diffuser_ros.core.normalizer import LimitsNormalizer, Normalizers, StandardNormalizer
from rs_diffuser_ros.core.planner import RiskSensitivePlanner

STATE = np.array([0.5, -1.0, 0.0, 1.0, 0.2, 0.0], np.float32)
GOAL = np.array([3.0, 2.0], np.float32)


def _normalizers():
    return Normalizers(LimitsNormalizer(torch.tensor([-3.0, -3, -1, -1, 0, -1.5]), torch.tensor([3.0, 3, 1, 1, 1, 1.5])),
                       LimitsNormalizer(torch.tensor([-9.0, -7]), torch.tensor([9.0, 7])),
                       LimitsNormalizer(torch.tensor([0.0, 0]), torch.tensor([12.0, 8])),
                       LimitsNormalizer(torch.tensor([0.0, -1.5]), torch.tensor([1.0, 1.5])), StandardNormalizer(-3.0, 7.5))


def _save(path, config=None):
    config = config or tiny_config()
    torch.manual_seed(1)
    networks = build_networks(config.model)
    save_checkpoint(path, config, _normalizers(), networks, extra={"step": "42"})
    return config, networks


def test_round_trip_restores_config_normalizers_weights_and_plans(tmp_path):
    path = tmp_path / "model.safetensors"
    config, networks = _save(path)
    loaded_cfg, norms, state_dicts, meta = read_checkpoint(path)
    assert loaded_cfg == config
    assert norms.to_dict() == _normalizers().to_dict()
    assert meta["step"] == "42"
    for name, net in networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(state_dicts[name][key], value)
    original = RiskSensitivePlanner(config, networks, _normalizers(), "cpu").plan(STATE, GOAL, 0.1, seed=5)
    reloaded = RiskSensitivePlanner.from_checkpoint(path, device="cpu").plan(STATE, GOAL, 0.1, seed=5)
    np.testing.assert_array_equal(original.candidates, reloaded.candidates)
    np.testing.assert_array_equal(original.action, reloaded.action)
    np.testing.assert_array_equal(original.quantiles, reloaded.quantiles)


def test_checkpoint_is_plain_safetensors_with_json_metadata(tmp_path):
    path = tmp_path / "model.safetensors"
    _save(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert json.loads(meta["config"])["model"]["horizon"] == 8
    assert set(json.loads(meta["normalizers"])) == {"plan", "goal", "position", "action", "returns"}
    assert {k.split(".")[0] for k in keys} == {"denoiser", "critic", "inverse_dynamics"}


def test_planner_settings_can_be_overridden_at_load(tmp_path):
    path = tmp_path / "model.safetensors"
    _save(path)
    planner = RiskSensitivePlanner.from_checkpoint(path, device="cpu", candidates=12, ddim_steps=3)
    assert planner.plan(STATE, GOAL, 0.5, seed=0).candidates.shape == (12, 8, 6)
    with pytest.raises(ValueError, match="unknown planner setting"):
        RiskSensitivePlanner.from_checkpoint(path, device="cpu", candidate=3)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="nope.safetensors: no such checkpoint file"):
        RiskSensitivePlanner.from_checkpoint(tmp_path / "nope.safetensors")


def test_corrupt_and_truncated_files_give_a_clear_error(tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 definitely not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable safetensors checkpoint"):
        RiskSensitivePlanner.from_checkpoint(garbage)
    good = tmp_path / "good.safetensors"
    _save(good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.safetensors: not a readable"):
        RiskSensitivePlanner.from_checkpoint(truncated)


def test_a_pickle_file_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.safetensors"
    torch.save({"denoiser.x": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        read_checkpoint(path)


def test_weights_that_do_not_match_the_embedded_config_are_named(tmp_path):
    path = tmp_path / "mismatch.safetensors"
    config, networks = _save(path)
    # Same tensors, but metadata claiming a wider U-Net.
    tensors = {f"{n}.{k}": v for n, net in networks.items() for k, v in net.state_dict().items()}
    cfg = config.to_dict()
    cfg["model"]["unet_dim"] = 16
    save_file(tensors, str(path), metadata={"format": FORMAT, "config": json.dumps(cfg),
                                            "normalizers": json.dumps(_normalizers().to_dict())})
    with pytest.raises(CheckpointError, match=r"mismatch.safetensors: weights of 'denoiser' do not match its config: .*shape mismatch"):
        RiskSensitivePlanner.from_checkpoint(path, device="cpu")


@pytest.mark.parametrize("metadata,match", [
    ({"format": "something-else/9"}, "metadata field 'format' is 'something-else/9'"),
    ({"format": FORMAT, "normalizers": "{}"}, "metadata field 'config' is missing"),
    ({"format": FORMAT, "config": "{not json", "normalizers": "{}"}, "metadata field 'config' is not valid JSON"),
    ({"format": FORMAT, "config": json.dumps({"model": {"horizon": 7}}), "normalizers": "{}"},
     "model.horizon=7 must be divisible"),
    ({"format": FORMAT, "config": json.dumps({}), "normalizers": json.dumps({"state": {}})},
     "metadata field 'normalizers' is malformed"),
])
def test_bad_metadata_is_named(tmp_path, metadata, match):
    path = tmp_path / "bad.safetensors"
    save_file({"denoiser.w": torch.zeros(1)}, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=match):
        read_checkpoint(path)
