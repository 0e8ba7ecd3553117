"""RiskyNavEnv: a differential-drive robot on PyBullet that must reach a goal past risky regions.

Control period 0.1 s. Each control step the (v, omega) command is clipped to the robot's
limits and approached under its acceleration limits over `physics_substeps` physics steps;
each substep sets the robot cylinder's base velocity and lets PyBullet resolve contacts with
the static walls and obstacles, so a robot driving into a wall stays outside it.

Every control step that ends with the robot's centre inside a risky region, a catastrophe
strikes with that region's probability p and costs its penalty C. It does not end the
episode (the robot can still reach the goal); it is reported in `info["risk_event"]`.
Episodes end on reaching the goal (termination) or at the layout's time limit (truncation).

Observation (float32, 8): [x, y, sin_yaw, cos_yaw, v, omega, goal_x, goal_y]. v and omega are
the wheel (odometry) velocities after the acceleration limits, i.e. what the drive executes.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pybullet as pb
from gymnasium import spaces

from risky_nav.layout import Box, Layout, load_layout
from risky_nav.occupancy import OccupancyGrid, occupancy_grid
from risky_nav.open_space import OpenSpace

CONTROL_PERIOD = 0.1       # seconds per env step
ROBOT_HEIGHT = 0.3         # metres; only matters for the GUI
ROBOT_MASS = 10.0          # kg; heavy enough that contacts do not spin it wildly
TOUCH_DISTANCE = 1e-3      # contact points closer than this count as a collision
NEAR_DISTANCE = 0.01       # contacts this close block motion along their normal next substep


class RiskyNavEnv(gym.Env):
    """Gymnasium environment; `gymnasium.make("RiskyNav-v0", layout="default")`.

    reset(options=...) accepts `start` ([x, y] or [x, y, yaw]; yaw defaults to facing the goal)
    and `goal` ([x, y]) to pose the task exactly (what the ROS sim node and evaluations use), or
    `start_anywhere` / `goal_anywhere` = True to sample them anywhere free instead of in the
    layout's regions. `set_goal` moves the goal mid-episode. The static map is available as
    `layout` (obstacles, risky regions with p and C, regions) and `occupancy_grid()`.
    """

    metadata = {"render_modes": ["human"], "render_fps": int(1 / CONTROL_PERIOD)}

    def __init__(self, layout: str | Path | Layout = "default", render_mode: str | None = None,
                 physics_substeps: int = 4, grid_resolution: float = 0.05):
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'human' (PyBullet GUI), got {render_mode!r}")
        if physics_substeps < 1:
            raise ValueError(f"physics_substeps must be >= 1, got {physics_substeps}")
        self.layout = layout if isinstance(layout, Layout) else load_layout(layout)
        self.render_mode = render_mode
        self.control_period = CONTROL_PERIOD
        self.physics_substeps = int(physics_substeps)
        self.max_episode_steps = int(round(self.layout.time_limit / CONTROL_PERIOD))
        self._grid = occupancy_grid(self.layout, grid_resolution)
        # Per-step constants, computed once: the step runs ~10^5 times a second across a batch.
        self._dt = CONTROL_PERIOD / self.physics_substeps
        self._risky_bounds = tuple((r.box.x_min, r.box.x_max, r.box.y_min, r.box.y_max, r.p, r.penalty)
                                   for r in self.layout.risky_regions)
        self._open_space = OpenSpace(self.layout, travel=self.layout.robot.max_v * CONTROL_PERIOD)

        lim, lay = self.layout.robot, self.layout
        self.action_space = spaces.Box(np.array([-lim.max_v, -lim.max_omega], np.float32),
                                       np.array([lim.max_v, lim.max_omega], np.float32))
        low = np.array([0, 0, -1, -1, -lim.max_v, -lim.max_omega, 0, 0], np.float32)
        high = np.array([lay.width, lay.height, 1, 1, lim.max_v, lim.max_omega, lay.width, lay.height],
                        np.float32)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)

        self._client = pb.connect(pb.GUI if render_mode == "human" else pb.DIRECT)
        self._build_world()
        self._x = self._y = self._yaw = 0.0
        self._v = self._omega = 0.0
        self._contact_normals: list[tuple[float, float]] = []
        self._goal = np.zeros(2)
        self._goal_x = self._goal_y = 0.0
        self._steps = 0
        self._distance = 0.0
        self._last_render = time.perf_counter()

    # ---------------------------------------------------------------- world
    def _build_world(self) -> None:
        c = self._client
        pb.setGravity(0, 0, 0, physicsClientId=c)  # planar robot: no floor, no gravity, no friction
        pb.setPhysicsEngineParameter(fixedTimeStep=CONTROL_PERIOD / self.physics_substeps,
                                     numSolverIterations=10, physicsClientId=c)
        for box in self.layout.solid_boxes():
            self._add_static_box(box, rgba=(0.35, 0.35, 0.35, 1))
        if self.render_mode == "human":
            for region in self.layout.risky_regions:   # visual only, so the GUI shows the danger
                shape = pb.createVisualShape(pb.GEOM_BOX, halfExtents=[region.box.size_x / 2,
                                             region.box.size_y / 2, 0.005],
                                             rgbaColor=(0.9, 0.2, 0.1, 0.4), physicsClientId=c)
                pb.createMultiBody(0, -1, shape, [region.box.center_x, region.box.center_y, 0.0],
                                   physicsClientId=c)
        r = self.layout.robot.radius
        col = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=r, height=ROBOT_HEIGHT, physicsClientId=c)
        vis = pb.createVisualShape(pb.GEOM_CYLINDER, radius=r, length=ROBOT_HEIGHT,
                                   rgbaColor=(0.1, 0.4, 0.9, 1), physicsClientId=c)
        self._robot = pb.createMultiBody(ROBOT_MASS, col, vis, [1, 1, ROBOT_HEIGHT / 2],
                                         physicsClientId=c)
        pb.changeDynamics(self._robot, -1, lateralFriction=0.0, restitution=0.0,
                          linearDamping=0.0, angularDamping=0.0, physicsClientId=c)

    def _add_static_box(self, box: Box, rgba) -> None:
        half = [box.size_x / 2, box.size_y / 2, ROBOT_HEIGHT]
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=self._client)
        vis = (pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=rgba,
                                    physicsClientId=self._client)
               if self.render_mode == "human" else -1)
        pb.createMultiBody(0, col, vis, [box.center_x, box.center_y, ROBOT_HEIGHT / 2],
                           physicsClientId=self._client)

    def _place_robot(self, x: float, y: float, yaw: float) -> None:
        pb.resetBasePositionAndOrientation(self._robot, [x, y, ROBOT_HEIGHT / 2],
                                           pb.getQuaternionFromEuler([0, 0, yaw]),
                                           physicsClientId=self._client)
        pb.resetBaseVelocity(self._robot, [0, 0, 0], [0, 0, 0], physicsClientId=self._client)
        self._x, self._y, self._yaw = x, y, yaw

    # ---------------------------------------------------------------- public data
    def occupancy_grid(self) -> OccupancyGrid:
        """Static occupancy grid of walls and obstacles (ROS OccupancyGrid convention)."""
        return self._grid

    @property
    def goal(self) -> np.ndarray:
        return self._goal.copy()

    def robot_pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of the robot in the world frame."""
        return self._x, self._y, self._yaw

    def set_goal(self, goal) -> None:
        """Move the goal mid-episode (e.g. a new goal from RViz); progress is measured from here on."""
        gx, gy = self._checked_point(goal, "goal", 2)
        self._goal = np.array([gx, gy])
        self._goal_x, self._goal_y = gx, gy
        self._distance = math.hypot(gx - self._x, gy - self._y)

    def risky_region_at(self, x: float, y: float) -> list[int]:
        """Indices of the layout's risky regions containing point (x, y)."""
        return [i for i, (x0, x1, y0, y1, _, _) in enumerate(self._risky_bounds) if x0 <= x <= x1 and y0 <= y <= y1]

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        if "goal" in options:
            gx, gy = self._checked_point(options["goal"], "goal", 2)
        else:
            gx, gy = self._sample_free(None if options.get("goal_anywhere") else self.layout.goal_region)
        if "start" in options:
            start = self._checked_point(options["start"], "start", None)
            sx, sy = start[0], start[1]
            yaw = start[2] if len(start) == 3 else math.atan2(gy - sy, gx - sx)
        else:
            sx, sy = self._sample_free(None if options.get("start_anywhere") else self.layout.start_region)
            yaw = float(self.np_random.uniform(-math.pi, math.pi))
        self._goal = np.array([gx, gy])
        self._goal_x, self._goal_y = gx, gy
        self._place_robot(sx, sy, yaw)
        self._v = self._omega = 0.0
        self._contact_normals = []
        self._steps = 0
        self._distance = math.hypot(gx - sx, gy - sy)
        info = dict(risk_event=False, risk_penalty=0.0, in_risky_region=bool(self.risky_region_at(sx, sy)),
                    collision=False, goal_reached=False, distance_to_goal=self._distance)
        return self._observation(), info

    def step(self, action):
        v_cmd, omega_cmd = self._clipped_command(action)
        dt = self._dt
        lim = self.layout.robot
        dv_max, domega_max = lim.max_accel * dt, lim.max_alpha * dt
        c, robot = self._client, self._robot
        collided = False
        v, omega, yaw = self._v, self._omega, self._yaw
        normals = self._contact_normals
        # Far from everything no contact can appear this step: skip PyBullet's contact query.
        query_contacts = not self._open_space.is_open(self._x, self._y)
        # Positional arguments and local names: PyBullet's keyword parsing cost more than its step.
        set_velocity, simulate, cos, sin = pb.resetBaseVelocity, pb.stepSimulation, math.cos, math.sin
        for _ in range(self.physics_substeps):
            # Approach the command under the acceleration limits (min/max written out: same numbers, faster).
            dv, domega = v_cmd - v, omega_cmd - omega
            v += -dv_max if dv < -dv_max else dv_max if dv > dv_max else dv
            omega += -domega_max if domega < -domega_max else domega_max if domega > domega_max else domega
            # Heading for this substep, integrated from the last measured yaw (midpoint rule).
            heading = yaw + 0.5 * omega * dt
            vx, vy = v * cos(heading), v * sin(heading)
            for nx, ny in normals:
                # A wall stops the motion into it (the wheels slip); sliding along it remains.
                into = vx * nx + vy * ny
                if into < 0:
                    vx, vy = vx - into * nx, vy - into * ny
            set_velocity(robot, (vx, vy, 0.0), (0.0, 0.0, omega), c)
            simulate(c)
            yaw += omega * dt
            normals = ()
            if query_contacts:
                contacts = pb.getContactPoints(bodyA=robot, physicsClientId=c)
                if contacts:
                    normals = [(pt[7][0], pt[7][1]) for pt in contacts if pt[8] < NEAR_DISTANCE]
                    collided = collided or any(pt[8] < TOUCH_DISTANCE for pt in contacts)
        self._contact_normals = normals
        self._v, self._omega = v, omega

        pos, orn = pb.getBasePositionAndOrientation(robot, c)
        yaw = pb.getEulerFromQuaternion(orn)[2]
        # Keep the robot planar: contacts may nudge it in z, roll or pitch.
        pb.resetBasePositionAndOrientation(robot, [pos[0], pos[1], ROBOT_HEIGHT / 2],
                                           pb.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=c)
        x, y = self._x, self._y = pos[0], pos[1]
        self._yaw = yaw
        self._steps += 1

        reward_w = self.layout.reward
        distance = math.hypot(self._goal_x - x, self._goal_y - y)
        reward = -reward_w.step_cost + reward_w.progress * (self._distance - distance)
        self._distance = distance

        risk_penalty = 0.0
        in_risky_region = False
        for x0, x1, y0, y1, p, penalty in self._risky_bounds:
            if x0 <= x <= x1 and y0 <= y <= y1:
                in_risky_region = True
                if self.np_random.random() < p:
                    risk_penalty += penalty
        reward -= risk_penalty
        if collided:
            reward -= reward_w.collision_penalty
        reached = distance < self.layout.goal_tolerance
        if reached:
            reward += reward_w.goal_bonus
        truncated = not reached and self._steps >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        info = dict(risk_event=risk_penalty > 0, risk_penalty=risk_penalty, in_risky_region=in_risky_region,
                    collision=collided, goal_reached=reached, distance_to_goal=distance)
        return self._observation(), float(reward), reached, truncated, info

    def _clipped_command(self, action) -> tuple[float, float]:
        """(v, omega) of `action` clipped to the robot's limits; a clear error for anything but 2 finite numbers."""
        if type(action) is np.ndarray and action.shape == (2,) and action.dtype.kind == "f":
            v, omega = float(action[0]), float(action[1])    # the common case, without numpy calls
        else:
            flat = np.asarray(action, dtype=np.float64).reshape(-1)
            if flat.shape != (2,):
                raise ValueError(f"action must be 2 finite numbers [v, omega], got {action!r}")
            v, omega = float(flat[0]), float(flat[1])
        if not (math.isfinite(v) and math.isfinite(omega)):
            raise ValueError(f"action must be 2 finite numbers [v, omega], got {action!r}")
        lim = self.layout.robot
        return min(max(v, -lim.max_v), lim.max_v), min(max(omega, -lim.max_omega), lim.max_omega)

    def render(self):
        """The PyBullet GUI draws itself; in human mode this only paces stepping to real time."""
        if self.render_mode != "human":
            return None
        now = time.perf_counter()
        wait = self._last_render + CONTROL_PERIOD - now
        if wait > 0:
            time.sleep(wait)
        self._last_render = max(now, self._last_render + CONTROL_PERIOD)
        return None

    def close(self):
        if self._client is not None and pb.isConnected(self._client):
            pb.disconnect(self._client)
        self._client = None

    # ---------------------------------------------------------------- helpers
    def _observation(self) -> np.ndarray:
        return np.array([self._x, self._y, math.sin(self._yaw), math.cos(self._yaw),
                         self._v, self._omega, self._goal_x, self._goal_y], dtype=np.float32)

    def _checked_point(self, value, name: str, length: int | None) -> tuple[float, ...]:
        point = np.asarray(value, dtype=np.float64).reshape(-1)
        allowed = (length,) if length else (2, 3)
        if point.shape[0] not in allowed or not np.all(np.isfinite(point)):
            raise ValueError(f"reset options[{name!r}] must be {' or '.join(map(str, allowed))} finite "
                             f"numbers, got {value!r}")
        if not (0.0 <= point[0] <= self.layout.width and 0.0 <= point[1] <= self.layout.height):
            # is_free alone would pass it: beyond the walls nothing is close enough to collide with.
            raise ValueError(f"reset options[{name!r}] = ({point[0]:.2f}, {point[1]:.2f}) is outside the map "
                             f"[0, {self.layout.width:g}] x [0, {self.layout.height:g}] of layout {self.layout.name!r}")
        if not self.layout.is_free(point[0], point[1]):
            raise ValueError(f"reset options[{name!r}] = ({point[0]:.2f}, {point[1]:.2f}) is not free: "
                             f"the robot (radius {self.layout.robot.radius} m) would overlap a wall or "
                             f"obstacle of layout {self.layout.name!r}")
        return tuple(float(v) for v in point)

    def _sample_free(self, region: Box | None) -> tuple[float, float]:
        """Uniform free point in `region` (or anywhere on the map), by rejection."""
        lay = self.layout
        box = region or Box(lay.width / 2, lay.height / 2, lay.width, lay.height)
        for _ in range(1000):
            x = float(self.np_random.uniform(box.x_min, box.x_max))
            y = float(self.np_random.uniform(box.y_min, box.y_max))
            if lay.is_free(x, y, lay.robot.radius + 0.05):
                return x, y
        raise RuntimeError(f"{lay.source}: found no free point in {box} after 1000 tries")
