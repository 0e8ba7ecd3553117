"""Scripted behaviour policies for Risky PointMass, the stand-ins for CODAC's unpublished data.

CODAC's dataset is the replay buffer of a risk-neutral online agent; ours mixes two scripted
routes with noise instead (documented in docs/simulation.md):

- `straight`: full speed straight at the goal, through the disc when it lies in the way;
- `detour`:   round the disc, inflated by DETOUR_MARGIN: towards the tangent point on the side
  picked at reset (the shorter side; a coin flip when the start is nearly symmetric), then
  straight at the goal once the way is clear;
- `noisy_*`:  the same with Gaussian noise of NOISY_SIGMA on each action (the clean ones have CLEAN_SIGMA);
- `random`:   uniform random actions (coverage, like CODAC's 1000 random exploration steps).

A policy is called as `policy.reset(obs)` at the start of an episode, then `action = policy(obs)`
every step; obs = [x, y, goal_x, goal_y]. Actions are already clipped to the env's +-0.1, so a
dataset records what the env executed.
"""
from __future__ import annotations

import numpy as np

from risky_pointmass.env import DISC_CENTER, DISC_RADIUS, MAX_STEP

DETOUR_MARGIN = 0.06      # keeps a full diagonal step (0.14) from cutting into the disc
SYMMETRIC = 0.03          # |cross product| below which both sides of the disc are about as long
CLEAN_SIGMA = 0.01
NOISY_SIGMA = 0.04
POLICY_NAMES = ("straight", "detour", "noisy_straight", "noisy_detour", "random")


def full_step(direction: np.ndarray, limit: float | None = None) -> np.ndarray:
    """Move along `direction` as far as the per-axis limit allows, but no farther than `limit`."""
    norm = float(np.linalg.norm(direction))
    if norm == 0:
        return np.zeros(2)
    step = direction * (MAX_STEP / float(np.abs(direction).max()))
    if limit is not None and np.linalg.norm(step) > limit:
        step = direction / norm * limit
    return step


class ScriptedPolicy:
    def __init__(self, name: str, rng: np.random.Generator):
        if name not in POLICY_NAMES:
            raise ValueError(f"unknown Risky PointMass policy {name!r}; choose from {POLICY_NAMES}")
        self.name, self.rng = name, rng
        self.sigma = NOISY_SIGMA if name.startswith("noisy") else CLEAN_SIGMA
        self.side = 1.0

    def reset(self, obs: np.ndarray) -> None:
        pos, goal, center = obs[:2].astype(np.float64), obs[2:4].astype(np.float64), np.array(DISC_CENTER)
        cross = _cross(goal - pos, center - pos)
        # Pass the disc on the side away from its centre: the shorter way round.
        self.side = -np.sign(cross) if abs(cross) > SYMMETRIC else self.rng.choice([-1.0, 1.0])

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if self.name == "random":
            return self.rng.uniform(-MAX_STEP, MAX_STEP, 2).astype(np.float32)
        pos, goal = obs[:2].astype(np.float64), obs[2:4].astype(np.float64)
        to_goal = goal - pos
        step = full_step(to_goal, limit=float(np.linalg.norm(to_goal)))
        if self.name.endswith("detour"):
            step = self._round_the_disc(pos, goal, step)
        step = step + self.rng.normal(0.0, self.sigma, 2)
        return np.clip(step, -MAX_STEP, MAX_STEP).astype(np.float32)

    def _round_the_disc(self, pos: np.ndarray, goal: np.ndarray, straight: np.ndarray) -> np.ndarray:
        center, radius = np.array(DISC_CENTER), DISC_RADIUS + DETOUR_MARGIN
        offset = pos - center
        distance = float(np.linalg.norm(offset))
        if distance <= radius:
            # Inside the inflated disc: leave it sideways, half outwards, half round.
            out = offset / max(distance, 1e-9)
            return full_step(out + _perpendicular(out, self.side))
        if not _segment_hits_disc(pos, goal, center, radius):
            return straight
        # Head for the tangent point on our side: rotate the direction to the centre by asin(R/d).
        to_center = -offset / distance
        angle = -self.side * np.arcsin(radius / distance)
        c, s = np.cos(angle), np.sin(angle)
        tangent = np.array([c * to_center[0] - s * to_center[1], s * to_center[0] + c * to_center[1]])
        return full_step(tangent)


def make_policy(name: str, rng: np.random.Generator | None = None) -> ScriptedPolicy:
    return ScriptedPolicy(name, rng if rng is not None else np.random.default_rng())


def _cross(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] * b[1] - a[1] * b[0])


def _perpendicular(v: np.ndarray, side: float) -> np.ndarray:
    """v turned by 90 degrees towards `side` (+1: counter-clockwise)."""
    return side * np.array([-v[1], v[0]])


def _segment_hits_disc(a: np.ndarray, b: np.ndarray, center: np.ndarray, radius: float) -> bool:
    ab = b - a
    t = float(np.clip(np.dot(center - a, ab) / max(float(np.dot(ab, ab)), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(a + t * ab - center)) < radius
