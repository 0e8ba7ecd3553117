"""Where the package's shipped files are: the default models and config/planner.yaml.

Found next to the imported package (source tree, colcon's symlink install) or in an install's
share/rs_diffuser_ros; when the source tree and the install both provide the package (see
rs_diffuser_ros/__init__.py), each is looked in.
"""
from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import rs_diffuser_ros

MODELS = "models"
GENERAL_MODEL = "general.safetensors"  # the map-conditioned model: any map with a costmap and a risk layer
DEFAULT_MODEL = GENERAL_MODEL  # what a node, the demo and the evaluation run when no model is named: any layout
DEFAULT_LAYOUT_MODEL = "default.safetensors"  # the default layout's specialist (per-layout, absolute coordinates)
DEFAULT_BC_MODEL = "behaviour_cloning.safetensors"


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """A shipped model file (rs_diffuser_ros/models/<name>); the first candidate when none exists."""
    candidates = [Path(str(resources.files("rs_diffuser_ros") / MODELS / name))]
    candidates += [Path(p) / MODELS / name for p in rs_diffuser_ros.__path__]
    return next((path for path in candidates if path.is_file()), candidates[0])


def resolve_model(value: str) -> Path:
    """A model setting's value -> its file: "" the default model, a bare name ("general", "two_risks") the
    shipped rs_diffuser_ros/models/<name>.safetensors, anything else a path."""
    if not value:
        return model_path()
    if "/" not in value and not value.endswith(".safetensors") and model_path(f"{value}.safetensors").is_file():
        return model_path(f"{value}.safetensors")
    return Path(value).expanduser()


def planner_yaml() -> Path:
    """config/planner.yaml: in the source tree, else in an install's share/rs_diffuser_ros/config."""
    here = Path(__file__).absolute()
    prefixes = [Path(sys.prefix)]  # pip install
    if len(here.parents) > 4:  # colcon install: <prefix>/lib/python3.X/site-packages/rs_diffuser_ros/shipped.py
        prefixes.insert(0, here.parents[4])
    candidates = [here.resolve().parents[1] / "config" / "planner.yaml"]  # source tree, symlink install
    candidates += [prefix / "share" / "rs_diffuser_ros" / "config" / "planner.yaml" for prefix in prefixes]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"config/planner.yaml not found (looked in {', '.join(map(str, candidates))})")
