"""Layouts: the YAML description of one risky-navigation map, loaded into validated dataclasses.

A layout is the whole task: map size, static obstacles (axis-aligned boxes), risky regions
(axis-aligned boxes with a per-step event probability p and a penalty C), start and goal
regions, robot limits, time limit and reward weights. World frame: x right, y up, the map
spans [0, width] x [0, height]; the boundary walls lie inside it.
Every error names the file and the dotted path of the offending field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml

LAYOUT_DIR = Path(__file__).resolve().parent / "layouts"


class LayoutError(ValueError):
    """A layout file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Box:
    """Axis-aligned rectangle given by its centre and full size (metres)."""

    center_x: float
    center_y: float
    size_x: float
    size_y: float

    @property
    def x_min(self) -> float:
        return self.center_x - self.size_x / 2

    @property
    def x_max(self) -> float:
        return self.center_x + self.size_x / 2

    @property
    def y_min(self) -> float:
        return self.center_y - self.size_y / 2

    @property
    def y_max(self) -> float:
        return self.center_y + self.size_y / 2

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        """True if (x, y) lies inside the box grown by `margin` on every side."""
        return (self.x_min - margin <= x <= self.x_max + margin
                and self.y_min - margin <= y <= self.y_max + margin)

    def distance(self, x: float, y: float) -> float:
        """Euclidean distance from (x, y) to the box (0 inside)."""
        dx = max(self.x_min - x, 0.0, x - self.x_max)
        dy = max(self.y_min - y, 0.0, y - self.y_max)
        return math.hypot(dx, dy)


@dataclass(frozen=True)
class RiskyRegion:
    """Every control step the robot's centre is inside `box`, a catastrophe strikes with
    probability `p` and costs `penalty` (C) of reward."""

    name: str
    box: Box
    p: float
    penalty: float


@dataclass(frozen=True)
class RobotLimits:
    radius: float
    max_v: float          # m/s, forward; reverse is limited to the same magnitude
    max_omega: float      # rad/s
    max_accel: float      # m/s^2
    max_alpha: float      # rad/s^2 (angular acceleration)


@dataclass(frozen=True)
class RewardWeights:
    step_cost: float          # paid every control step (time pressure)
    progress: float           # per metre of distance to the goal gained
    goal_bonus: float         # once, on reaching the goal
    collision_penalty: float  # every control step with a contact


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    source: str               # file the layout came from (for error messages)
    width: float
    height: float
    wall_thickness: float
    robot: RobotLimits
    obstacles: tuple[Box, ...]
    risky_regions: tuple[RiskyRegion, ...]
    start_region: Box
    goal_region: Box
    goal_tolerance: float
    time_limit: float         # seconds
    reward: RewardWeights

    def walls(self) -> tuple[Box, ...]:
        """The four boundary walls, inside the map so the occupancy grid shows them."""
        t, w, h = self.wall_thickness, self.width, self.height
        return (Box(w / 2, t / 2, w, t), Box(w / 2, h - t / 2, w, t),
                Box(t / 2, h / 2, t, h), Box(w - t / 2, h / 2, t, h))

    def solid_boxes(self) -> tuple[Box, ...]:
        """Walls and obstacles: everything the robot collides with."""
        return self.walls() + self.obstacles

    def clearance(self, x: float, y: float) -> float:
        """Distance from (x, y) to the nearest wall or obstacle."""
        return min(b.distance(x, y) for b in self.solid_boxes())

    def is_free(self, x: float, y: float, margin: float | None = None) -> bool:
        """True if a robot centred at (x, y) touches no wall or obstacle (plus `margin`)."""
        margin = self.robot.radius if margin is None else margin
        return self.clearance(x, y) > margin


def available_layouts() -> list[str]:
    """Names of the layouts shipped with the package."""
    return sorted(p.stem for p in LAYOUT_DIR.glob("*.yaml"))


def load_layout(name_or_path: str | Path) -> Layout:
    """Load a shipped layout by name (`"default"`) or any layout YAML by path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = LAYOUT_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise LayoutError(f"unknown layout {name_or_path!r}: shipped layouts are "
                              f"{available_layouts()}, or pass a path to a .yaml file")
    if not path.is_file():
        raise LayoutError(f"{path}: layout file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LayoutError(f"{path}: not valid YAML: {err}") from err
    return parse_layout(raw, source=str(path))


def parse_layout(raw: object, source: str = "<layout>") -> Layout:
    """Validate a layout given as parsed YAML (a dict) and build the `Layout`."""
    f = _Fields(source)
    top = f.mapping(raw, "")
    robot_raw = f.mapping(f.get(top, "robot", ""), "robot")
    robot = RobotLimits(
        radius=f.positive(robot_raw, "radius", "robot"),
        max_v=f.positive(robot_raw, "max_v", "robot"),
        max_omega=f.positive(robot_raw, "max_omega", "robot"),
        max_accel=f.positive(robot_raw, "max_accel", "robot"),
        max_alpha=f.positive(robot_raw, "max_alpha", "robot"),
    )
    reward_raw = f.mapping(f.get(top, "reward", ""), "reward")
    reward = RewardWeights(
        step_cost=f.non_negative(reward_raw, "step_cost", "reward"),
        progress=f.non_negative(reward_raw, "progress", "reward"),
        goal_bonus=f.non_negative(reward_raw, "goal_bonus", "reward"),
        collision_penalty=f.non_negative(reward_raw, "collision_penalty", "reward"),
    )
    map_raw = f.mapping(f.get(top, "map", ""), "map")
    width = f.positive(map_raw, "width", "map")
    height = f.positive(map_raw, "height", "map")
    wall_thickness = f.positive(map_raw, "wall_thickness", "map") if "wall_thickness" in map_raw else 0.1

    obstacles = tuple(f.box(o, f"obstacles[{i}]")
                      for i, o in enumerate(f.sequence(top.get("obstacles", []), "obstacles")))
    risky = []
    for i, r in enumerate(f.sequence(f.get(top, "risky_regions", ""), "risky_regions")):
        where = f"risky_regions[{i}]"
        r = f.mapping(r, where)
        p = f.number(r, "p", where)
        if not 0.0 <= p <= 1.0:
            raise LayoutError(f"{source}: {where}.p must be a probability in [0, 1], got {p}")
        risky.append(RiskyRegion(name=str(r.get("name", f"risky_{i}")), box=f.box(r, where), p=p,
                                 penalty=f.non_negative(r, "penalty", where)))

    layout = Layout(
        name=str(top.get("name", Path(source).stem)),
        description=str(top.get("description", "")),
        source=source,
        width=width, height=height, wall_thickness=wall_thickness,
        robot=robot,
        obstacles=obstacles,
        risky_regions=tuple(risky),
        start_region=f.box(f.get(top, "start_region", ""), "start_region"),
        goal_region=f.box(f.get(top, "goal_region", ""), "goal_region"),
        goal_tolerance=f.positive(top, "goal_tolerance", ""),
        time_limit=f.positive(top, "time_limit", ""),
        reward=reward,
    )
    _check_geometry(layout, source)
    return layout


def _check_geometry(layout: Layout, source: str) -> None:
    """Regions must lie on the map, and a start/goal region must offer free space."""
    named = [("start_region", layout.start_region), ("goal_region", layout.goal_region)]
    named += [(f"obstacles[{i}]", b) for i, b in enumerate(layout.obstacles)]
    named += [(f"risky_regions[{i}]", r.box) for i, r in enumerate(layout.risky_regions)]
    for where, box in named:
        if box.x_min < 0 or box.y_min < 0 or box.x_max > layout.width or box.y_max > layout.height:
            raise LayoutError(f"{source}: {where} extends beyond the map "
                              f"[0, {layout.width}] x [0, {layout.height}]")
    for where, box in named[:2]:
        # The region is sampled uniformly; insist its centre is free so sampling can succeed,
        # and that no obstacle overlaps it at all (a start inside an obstacle is a layout bug).
        for i, obstacle in enumerate(layout.obstacles):
            overlap = (box.x_min < obstacle.x_max and obstacle.x_min < box.x_max
                       and box.y_min < obstacle.y_max and obstacle.y_min < box.y_max)
            if overlap:
                raise LayoutError(f"{source}: {where} overlaps obstacles[{i}]: "
                                  f"the robot could start or be sent inside an obstacle")
        if not layout.is_free(box.center_x, box.center_y):
            raise LayoutError(f"{source}: {where} centre ({box.center_x}, {box.center_y}) is "
                              f"closer than the robot radius to a wall or obstacle")


class _Fields:
    """Typed field access that names the file and field in every error."""

    def __init__(self, source: str):
        self.source = source

    def _name(self, where: str, key: str) -> str:
        return f"{where}.{key}" if where else key

    def get(self, mapping: dict, key: str, where: str):
        if key not in mapping:
            raise LayoutError(f"{self.source}: missing field {self._name(where, key)!r}")
        return mapping[key]

    def mapping(self, value, where: str) -> dict:
        if not isinstance(value, dict):
            raise LayoutError(f"{self.source}: {where or 'the file'} must be a mapping, "
                              f"got {type(value).__name__}")
        return value

    def sequence(self, value, where: str) -> list:
        if not isinstance(value, list):
            raise LayoutError(f"{self.source}: {where} must be a list, got {type(value).__name__}")
        return value

    def number(self, mapping: dict, key: str, where: str) -> float:
        value = _finite_float(self.get(mapping, key, where))
        if value is None:
            raise LayoutError(f"{self.source}: {self._name(where, key)} must be a finite number, "
                              f"got {_short(mapping[key])}")
        return value

    def positive(self, mapping: dict, key: str, where: str) -> float:
        value = self.number(mapping, key, where)
        if value <= 0:
            raise LayoutError(f"{self.source}: {self._name(where, key)} must be > 0, got {value}")
        return value

    def non_negative(self, mapping: dict, key: str, where: str) -> float:
        value = self.number(mapping, key, where)
        if value < 0:
            raise LayoutError(f"{self.source}: {self._name(where, key)} must be >= 0, got {value}")
        return value

    def pair(self, mapping: dict, key: str, where: str) -> tuple[float, float]:
        value = self.get(mapping, key, where)
        name = self._name(where, key)
        numbers = [_finite_float(v) for v in value] if isinstance(value, list) else []
        if len(numbers) != 2 or None in numbers:
            raise LayoutError(f"{self.source}: {name} must be a list of two finite numbers [x, y], "
                              f"got {_short(value)}")
        return numbers[0], numbers[1]

    def box(self, value, where: str) -> Box:
        value = self.mapping(value, where)
        cx, cy = self.pair(value, "center", where)
        sx, sy = self.pair(value, "size", where)
        if sx <= 0 or sy <= 0:
            raise LayoutError(f"{self.source}: {where}.size must be positive, got [{sx}, {sy}]")
        return Box(cx, cy, sx, sy)


def _finite_float(value) -> float | None:
    """value as a float if it is a finite number (not a bool), else None.

    An integer too large for a float (YAML reads 1e400 written without a dot as one) is not finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _short(value, limit: int = 80) -> str:
    """repr of a bad value, cut short: the error names the field, it need not echo a huge value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
