"""Plan from where the robot is now, not from where its last odometry said it was.

Over DDS the latest odometry waits up to a publishing period (and on a loaded machine longer) for the control tick,
while the robot drives on. A tick that plans and checks collisions from that old state commands a robot that is
already elsewhere: at 0.3-1 m/s, 0.1 s of age is 3-10 cm, the whole collision margin. As robot controllers commonly
do, the state is moved on by its age along its own (v, omega) arc (dead reckoning) before anything uses it. In the
evaluation the odometry arrives at the tick itself (age 0), so nothing changes there.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from rs_diffuser_ros.control.collision import unicycle_rollout


def predicted_state(state: np.ndarray, age_s: float) -> np.ndarray:
    """state [x, y, sin(yaw), cos(yaw), v, omega] moved on `age_s` seconds along its own (v, omega) arc; v and omega
    kept. A state of age 0 (or less) is returned as it is."""
    if not age_s > 0.0:
        return state
    s = np.asarray(state, dtype=np.float32)
    xy = unicycle_rollout(torch.as_tensor(s[None]), torch.as_tensor(s[None, None, 4:6]), age_s)[0, 0, -1]
    yaw = math.atan2(float(s[2]), float(s[3])) + float(s[5]) * age_s
    out = s.copy()
    out[:4] = (float(xy[0]), float(xy[1]), math.sin(yaw), math.cos(yaw))
    return out
