"""Top-down rendering: a PNG with the layout and each policy's trajectory in its colour."""
import matplotlib.image
import numpy as np
from matplotlib.colors import to_rgb

from risky_nav.env import RiskyNavEnv
from risky_nav.policies import make_policy
from risky_nav.render import POLICY_COLORS, TRAJECTORY_ALPHA, render_png
from risky_nav.rollout import run_episode


def _has_color(image: np.ndarray, color: str) -> bool:
    """Enough pixels of `color` drawn at the renderer's line alpha over the white background."""
    blended = TRAJECTORY_ALPHA * np.array(to_rgb(color)) + (1 - TRAJECTORY_ALPHA)
    return bool((np.abs(image[..., :3] - blended).max(axis=-1) < 0.03).sum() > 50)


def test_png_shows_both_policies(tmp_path):
    env = RiskyNavEnv("default")
    records = [run_episode(env, make_policy(name, env.layout), seed=0) for name in ("shortcut", "detour")]
    env.close()
    path = render_png(env.layout, records, tmp_path / "layout.png")
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert _has_color(image, POLICY_COLORS["shortcut"]) and _has_color(image, POLICY_COLORS["detour"])


def test_png_without_trajectories_has_no_policy_colours(tmp_path):
    env = RiskyNavEnv("default")
    env.close()
    image = matplotlib.image.imread(render_png(env.layout, [], tmp_path / "empty.png"))
    assert not _has_color(image, POLICY_COLORS["shortcut"])
