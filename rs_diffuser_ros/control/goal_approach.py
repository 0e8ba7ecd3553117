"""Slowing down on the final approach, as Nav2's regulated pure pursuit does.

The planner sees the robot once per replan, through odometry a little older still. At full
speed the robot can cross the goal's tolerance circle between two looks, overshoot and come
back. Scaling the speed limit with the distance keeps each step between looks short.
"""


def approach_speed_limit(distance_m: float, max_speed: float, slowdown_m: float, min_speed: float) -> float:
    """The linear speed limit at `distance_m` from the goal.

    max_speed beyond `slowdown_m`, then proportional to the distance, never below `min_speed`
    (the robot must still arrive) nor above max_speed. slowdown_m = 0 turns it off.
    """
    if slowdown_m <= 0.0 or distance_m >= slowdown_m:
        return max_speed
    return min(max_speed, max(min_speed, max_speed * distance_m / slowdown_m))
