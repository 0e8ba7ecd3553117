"""Offline datasets in the Minari format (the maintained successor of D4RL), and their loader.

On disk: `<dir>/data/main_data.hdf5` + `<dir>/data/metadata.json`, exactly what Minari writes,
so `minari.MinariDataset("<dir>/data")` reads it, and `minari.load_dataset(id)` too when
`<dir>` is `$MINARI_DATASETS_PATH/<id>`. Each episode group holds `observations [T+1, D]`,
`actions [T, A]` (D = 8, A = 2 for RiskyNav; risky_pointmass writes the same format with D = 4),
`rewards`, `terminations`, `truncations` [T] and, as Minari does for infos, `infos/<key> [T+1]`
whose first entry comes from reset(); the episode's behaviour policy is an attribute of its group,
and so is the name of its map (`layout`).

`load_episodes` reads the file with h5py only (no gymnasium or pybullet needed) and returns
the architecture's episode dicts, checking every field it returns.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import h5py
import numpy as np

from risky_nav.rollout import EpisodeRecord

DATA_FILE = "main_data.hdf5"
EPISODE_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")
# Contract name -> info key stored per step.
STEP_FLAGS = {"risk_events": "risk_event", "collisions": "collision", "in_risky_region": "in_risky_region"}


class DatasetError(ValueError):
    """A dataset file is missing, malformed or holds bad values; names the file and field."""


class DatasetWriter:
    """Appends `EpisodeRecord`s to a new Minari dataset directory."""

    def __init__(self, out_dir: str | Path, dataset_id: str, env_spec: gym.envs.registration.EnvSpec,
                 observation_space: gym.Space, action_space: gym.Space, metadata: dict):
        import minari  # only writers need minari
        from minari.dataset.minari_storage import MinariStorage

        self.out_dir = Path(out_dir).resolve()   # minari mis-joins relative paths when sizing the file
        data_dir = self.out_dir / "data"
        if (data_dir / "metadata.json").exists():
            raise DatasetError(f"{data_dir}: a dataset already exists there; remove it or choose another --out")
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.storage = MinariStorage.new(data_dir, observation_space=observation_space,
                                         action_space=action_space, env_spec=env_spec, jpeg_encoding=False)
        self.storage.update_metadata({"dataset_id": dataset_id, "minari_version": minari.__version__,
                                      **metadata})
        self.episodes_written = 0

    def write(self, records: list[EpisodeRecord], seeds: list[int], options: list[dict],
              layouts: list[str] | None = None) -> None:
        """Append episodes; `layouts` names each episode's map (its group's `layout` attribute)."""
        from minari.data_collector.episode_buffer import EpisodeBuffer

        buffers = []
        for record, seed, opts in zip(records, seeds, options):
            infos = {"risk_event": record.risk_events, "collision": record.collisions,
                     "in_risky_region": record.in_risky_region}
            # Minari keeps T+1 infos (reset first); reset never reports an event or a collision.
            infos = {k: np.concatenate([[False], v]).astype(bool) for k, v in infos.items()}
            buffers.append(EpisodeBuffer(
                id=self.episodes_written + len(buffers), seed=seed, options=opts or None,
                observations=record.observations, actions=record.actions,
                rewards=record.rewards, terminations=record.terminations,
                truncations=record.truncations, infos=infos))
        self.storage.update_episodes(buffers)
        first = self.episodes_written
        per_episode = [{"policy": r.policy} for r in records]
        for meta, layout in zip(per_episode, layouts or []):
            meta["layout"] = layout
        self.storage.update_episode_metadata(per_episode, range(first, first + len(records)))
        self.episodes_written += len(records)


def resolve_data_file(path_or_id: str | Path) -> Path:
    """The HDF5 file of a dataset given as its directory, its `data/` dir, the file, or a Minari id."""
    candidates = []
    path = Path(path_or_id)
    candidates += [path, path / DATA_FILE, path / "data" / DATA_FILE]
    if not path.is_absolute():
        root = Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets"))
        candidates.append(root / str(path_or_id) / "data" / DATA_FILE)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{path_or_id}: no Minari dataset found (looked for {DATA_FILE} in it, "
                       f"in its data/ folder and under $MINARI_DATASETS_PATH)")


def load_episodes(path_or_id: str | Path) -> list[dict]:
    """All episodes of a dataset as dicts of numpy arrays.

    Keys: observations float32 [T+1, D], actions float32 [T, A], rewards float64 [T],
    terminations, truncations, risk_events, collisions, in_risky_region bool [T], policy str,
    layout str (the name of the episode's map; "" in datasets that did not record it).
    D and A are the first episode's; every other episode must have the same.
    """
    data_file = resolve_data_file(path_or_id)
    episodes = []
    with h5py.File(data_file, "r") as f:
        names = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not names:
            raise DatasetError(f"{data_file}: holds no episodes")
        dims = None
        for name in names:
            episodes.append(_read_episode(f[name], f"{data_file}:{name}", dims))
            dims = dims or (episodes[0]["observations"].shape[1], episodes[0]["actions"].shape[1])
    return episodes


def dataset_metadata(path_or_id: str | Path) -> dict:
    """The dataset's metadata.json (Minari's, plus our layout and policy mix)."""
    return json.loads((resolve_data_file(path_or_id).parent / "metadata.json").read_text())


def _read_episode(group: h5py.Group, where: str, dims: tuple[int, int] | None) -> dict:
    """One episode; dims = (D, A) of the episodes read before, None for the first."""
    def field(key: str) -> np.ndarray:
        if key not in group:
            raise DatasetError(f"{where}: missing field '{key}'")
        return group[key][()]

    episode = {key: field(key) for key in EPISODE_FIELDS}
    t = len(episode["rewards"])
    for contract_name, info_key in STEP_FLAGS.items():
        episode[contract_name] = field(f"infos/{info_key}")[1:].astype(bool)   # drop the reset entry
    episode["observations"] = episode["observations"].astype(np.float32)
    episode["actions"] = episode["actions"].astype(np.float32)
    episode["rewards"] = episode["rewards"].astype(np.float64)
    for flag in ("terminations", "truncations"):
        episode[flag] = episode[flag].astype(bool)

    if episode["observations"].ndim != 2 or episode["actions"].ndim != 2:
        raise DatasetError(f"{where}: fields 'observations' and 'actions' must be 2-D, got shapes "
                           f"{episode['observations'].shape} and {episode['actions'].shape}")
    obs_dim, action_dim = dims or (episode["observations"].shape[1], episode["actions"].shape[1])
    expected = {"observations": (t + 1, obs_dim), "actions": (t, action_dim), "rewards": (t,),
                "terminations": (t,), "truncations": (t,), "risk_events": (t,), "collisions": (t,),
                "in_risky_region": (t,)}
    if t < 1:
        raise DatasetError(f"{where}: field 'rewards' is empty (an episode needs at least one step)")
    for key, shape in expected.items():
        if episode[key].shape != shape:
            raise DatasetError(f"{where}: field '{key}' has shape {episode[key].shape}, expected {shape}")
    for key in ("observations", "actions", "rewards"):
        bad = ~np.isfinite(episode[key])
        if bad.any():
            raise DatasetError(f"{where}: field '{key}' holds {int(bad.sum())} NaN/inf values "
                               f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])})")
    if not (episode["terminations"][-1] or episode["truncations"][-1]):
        raise DatasetError(f"{where}: fields 'terminations'/'truncations': the last step neither "
                           f"terminates nor truncates the episode")
    episode["policy"] = str(group.attrs.get("policy", "unknown"))
    episode["layout"] = str(group.attrs.get("layout", ""))   # absent in datasets written before maps were named
    return episode


__all__ = ["DatasetError", "DatasetWriter", "dataset_metadata", "load_episodes"]
