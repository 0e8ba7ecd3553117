"""Draws what the rviz config shows (map, risk map, risky regions, candidates by risk, plan, robot, goal) to PNG.

ROS-free: takes a `Scene` of plain arrays; `snapshot.py` fills it from the topics.
"""
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")  # headless: no display on CI or a robot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, Normalize  # noqa: E402
from matplotlib.patches import Circle, Polygon, Rectangle  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402
from mpl_toolkits.axes_grid1 import make_axes_locatable  # noqa: E402

from rs_diffuser_ros.nodes.risk_colors import risk_rgb  # noqa: E402

RISK_CMAP = LinearSegmentedColormap.from_list("risk", risk_rgb(np.linspace(0.0, 1.0, 64)))


@dataclass
class Region:
    """A risky region as drawn: a circle (size = diameter) or a box (size = [length_x, length_y])."""

    shape: str  # "circle" or "box"
    x: float
    y: float
    size: Tuple[float, float]
    yaw: float = 0.0
    rgba: Tuple[float, float, float, float] = (0.95, 0.45, 0.1, 0.4)
    label: str = ""


@dataclass
class Scene:
    occupancy: Optional[np.ndarray] = None  # int8 [height, width], ROS convention (row = y)
    resolution: float = 0.05
    origin: Tuple[float, float] = (0.0, 0.0)
    risk_map: Optional[np.ndarray] = None  # int8 [height, width] hazard 0..100 (/risk_map), -1 unknown
    risk_resolution: float = 0.05
    risk_origin: Tuple[float, float] = (0.0, 0.0)
    regions: List[Region] = field(default_factory=list)
    robot: Optional[Tuple[float, float, float]] = None  # x, y, yaw
    trail: Optional[np.ndarray] = None  # [T, 2] positions driven so far (rviz2's Odometry display, Keep > 1)
    goal: Optional[Tuple[float, float]] = None
    plan: Optional[np.ndarray] = None  # [H, 2]
    candidates: List[np.ndarray] = field(default_factory=list)  # K x [H, 2]
    risk_values: Optional[np.ndarray] = None  # [K]
    title: str = ""


def _draw_map(ax, scene: Scene):
    height, width = scene.occupancy.shape
    x0, y0 = scene.origin
    extent = (x0, x0 + width * scene.resolution, y0, y0 + height * scene.resolution)
    cells = scene.occupancy.astype(np.float32)
    shade = np.where(cells < 0, 0.5, 1.0 - np.clip(cells, 0, 100) / 100.0)  # rviz "map" scheme: free white
    ax.imshow(shade, cmap="gray", vmin=0.0, vmax=1.0, origin="lower", extent=extent, interpolation="nearest")
    return extent


def _draw_risk_map(ax, scene: Scene) -> None:
    """A red overlay under the region markers, transparent at hazard 0 (and unknown), more opaque the higher
    the hazard: alpha 0.1 + 0.6 x level / 100 (rviz2 draws the layer in its "costmap" colours instead).
    Faint at the shipped layouts' levels (5-15), so the markers drawn over it keep their colour."""
    height, width = scene.risk_map.shape
    x0, y0 = scene.risk_origin
    extent = (x0, x0 + width * scene.risk_resolution, y0, y0 + height * scene.risk_resolution)
    level = scene.risk_map.astype(np.float32)
    rgba = np.zeros((height, width, 4), dtype=np.float32)
    rgba[..., 0] = 1.0
    rgba[..., 3] = np.where(level > 0, 0.1 + 0.6 * np.clip(level, 0, 100) / 100.0, 0.0)
    ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest", zorder=1)
    if (level > 0).any():  # the legend swatch: hazard 50 (alpha 0.4)
        ax.add_patch(Rectangle((0, 0), 0, 0, color=(1.0, 0.0, 0.0, 0.4), lw=0, label="risk map (/risk_map)"))


def _draw_region(ax, region: Region) -> None:
    colour = region.rgba
    if region.label:
        ax.annotate(region.label, (region.x, region.y), ha="center", va="center", fontsize=8, zorder=8)
    if region.shape == "circle":
        ax.add_patch(Circle((region.x, region.y), region.size[0] / 2.0, color=colour, lw=0))
        return
    length_x, length_y = region.size
    box = Rectangle((-length_x / 2.0, -length_y / 2.0), length_x, length_y, color=colour, lw=0)
    box.set_transform(Affine2D().rotate(region.yaw).translate(region.x, region.y) + ax.transData)
    ax.add_patch(box)


def _draw_candidates(fig, ax, scene: Scene) -> None:
    values = np.asarray(scene.risk_values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    norm = Normalize(vmin=low, vmax=high)
    lines = LineCollection([c for c in scene.candidates if len(c) > 1], cmap=RISK_CMAP, norm=norm,
                           linewidths=1.2, alpha=0.8, zorder=3)
    lines.set_array(np.array([v for c, v in zip(scene.candidates, values) if len(c) > 1]))
    ax.add_collection(lines)
    # A colour bar exactly as tall as the (equal-aspect) map.
    bar = fig.colorbar(lines, cax=make_axes_locatable(ax).append_axes("right", size="4%", pad=0.1))
    bar.set_label("candidate rho_alpha (predicted return; higher is better)")


def _draw_robot(ax, x: float, y: float, yaw: float, size: float) -> None:
    outline = np.array([[1.0, 0.0], [-0.6, 0.55], [-0.3, 0.0], [-0.6, -0.55]]) * size
    rotation = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
    ax.add_patch(Polygon(outline @ rotation.T + [x, y], closed=True, color="tab:blue", zorder=6))


def render_scene(scene: Scene, path, dpi: int = 120) -> None:
    fig, ax = plt.subplots(figsize=(8, 7))
    span, extent = 1.0, None
    if scene.occupancy is not None:
        extent = _draw_map(ax, scene)
        span = max(scene.occupancy.shape) * scene.resolution
    if scene.risk_map is not None:
        _draw_risk_map(ax, scene)
    for region in scene.regions:
        _draw_region(ax, region)
    if scene.candidates and scene.risk_values is not None:
        _draw_candidates(fig, ax, scene)
    if scene.trail is not None and len(scene.trail) > 1:
        ax.plot(scene.trail[:, 0], scene.trail[:, 1], color="tab:blue", lw=1.5, ls="--", zorder=4,
                label="driven (/odom)")
    if scene.plan is not None and len(scene.plan) > 1:
        ax.plot(scene.plan[:, 0], scene.plan[:, 1], color="black", lw=2.5, zorder=5, label="chosen plan (/plan)")
    if scene.goal is not None:
        ax.plot(*scene.goal, marker="*", markersize=18, color="gold", markeredgecolor="black", zorder=7,
                linestyle="none", label="goal")
    if scene.robot is not None:
        _draw_robot(ax, *scene.robot, size=max(0.15, span / 60.0))
    if extent is not None:  # the view rviz2's config frames: the map (plans may leave it)
        margin = 0.02 * span
        ax.set_xlim(extent[0] - margin, extent[1] + margin)
        ax.set_ylim(extent[2] - margin, extent[3] + margin)
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (odom)")
    ax.set_ylabel("y [m] (odom)")
    if scene.title:
        ax.set_title(scene.title, fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
