"""One safetensors file per trained offline-RL policy: weights plus sizes and config in the metadata.

Written atomically (tmp file, then rename); read with core.checkpoint's reader, which never unpickles.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from rs_diffuser_ros.core.checkpoint import read_safetensors


def save_policy(module: torch.nn.Module, path: str | Path, file_format: str, metadata: dict) -> Path:
    """metadata values that are not strings are stored as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    meta = {"format": file_format, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def read_policy(path: str | Path, file_format: str, error: type[Exception], kind: str,
                required: tuple[str, ...]) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata with the `required` fields JSON-decoded, tensors); raises `error` naming the path and field."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such {kind} checkpoint")
    metadata, tensors = read_safetensors(path, error, kind)
    if metadata.get("format") != file_format:
        raise error(f"{path}: metadata field 'format' is {metadata.get('format')!r}, expected {file_format!r}")
    decoded = dict(metadata)
    for name in required:
        if name not in metadata:
            raise error(f"{path}: metadata field '{name}' is missing")
        try:
            decoded[name] = json.loads(metadata[name])
        except json.JSONDecodeError as e:
            raise error(f"{path}: metadata field '{name}' is not valid JSON ({e})") from e
    return decoded, tensors


def load_weights(module: torch.nn.Module, tensors: dict, path, error: type[Exception]) -> torch.nn.Module:
    try:
        module.load_state_dict(tensors)
    except RuntimeError as e:
        raise error(f"{path}: weights do not match the sizes in its metadata: {e}") from e
    return module.eval()
