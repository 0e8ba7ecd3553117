"""Model checkpoints: one safetensors file holding the three networks' weights, with the
config and the normalisers as JSON in its metadata. Loading never unpickles anything.

Layout: tensors "<network>.<parameter>" for network in denoiser / critic / inverse_dynamics;
metadata {"format": FORMAT, "config": json, "normalizers": json, ...extra string fields}.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import ConfigError, CoreConfig
from .models.networks import NETWORK_NAMES
from .normalizer import Normalizers

# /2: plan-frame windows, x0-predicting denoiser, context conditioning (files of /1 cannot load).
FORMAT = "rs_diffuser_ros.core/2"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, of another format, or does not match its config."""


def save_checkpoint(path: str | Path, config: CoreConfig, normalizers: Normalizers,
                    networks: dict[str, nn.Module], extra: dict[str, str] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"{name}.{key}": value.detach().to("cpu").contiguous()
               for name in NETWORK_NAMES for key, value in networks[name].state_dict().items()}
    metadata = {"format": FORMAT, "config": json.dumps(config.to_dict()),
                "normalizers": json.dumps(normalizers.to_dict()), **(extra or {})}
    # Write then rename, so a crash mid-save never leaves a half-written checkpoint behind.
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return path


def read_safetensors(path: Path, error: type[Exception], kind: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors) of a safetensors file, loaded without unpickling anything; a file that is
    not one raises `error` naming the path and saying it is not a readable safetensors `kind`."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return metadata, load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise error(f"{path}: not a readable safetensors {kind} ({e})") from e


def read_checkpoint(path: str | Path) -> tuple[CoreConfig, Normalizers, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """-> (config, normalizers, {network: state_dict}, metadata). Raises CheckpointError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    metadata, tensors = read_safetensors(path, CheckpointError, "checkpoint")
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path}: metadata field 'format' is {metadata.get('format')!r}, expected {FORMAT!r}")
    for field in ("config", "normalizers"):
        if field not in metadata:
            raise CheckpointError(f"{path}: metadata field '{field}' is missing")
    try:
        config = CoreConfig.from_dict(json.loads(metadata["config"]), where=f"{path} (metadata 'config')")
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: metadata field 'config' is not valid JSON ({e})") from e
    except ConfigError as e:
        raise CheckpointError(str(e)) from e
    try:
        normalizers = Normalizers.from_dict(json.loads(metadata["normalizers"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: metadata field 'normalizers' is malformed ({e!r})") from e
    state_dicts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in NETWORK_NAMES}
    for key, value in tensors.items():
        name, _, param = key.partition(".")
        if name not in state_dicts:
            raise CheckpointError(f"{path}: unexpected tensor '{key}' (networks are {NETWORK_NAMES})")
        if value.is_floating_point() and not torch.isfinite(value).all():
            # Such a model plans NaN every time: refuse it at load, where the old model can be kept.
            raise CheckpointError(f"{path}: tensor '{key}' holds NaN or inf (a diverged or damaged training run)")
        state_dicts[name][param] = value
    return config, normalizers, state_dicts, metadata


def load_weights(network: nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path, name: str) -> None:
    """Strict load with an error that lists what differs from the network the config builds."""
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{k}: file {tuple(state_dict[k].shape)} vs config {tuple(v.shape)}"
                  for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if mismatched:
            parts.append(f"shape mismatch {mismatched[:5]}{' ...' if len(mismatched) > 5 else ''}")
        raise CheckpointError(f"{path}: weights of '{name}' do not match its config: " + "; ".join(parts))
    network.load_state_dict(state_dict)
