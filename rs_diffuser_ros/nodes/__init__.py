"""ROS 2 nodes: thin adapters (message in -> core call -> message out).

The command-line stand-ins for `ros2 launch`, `ros2 param` and rviz2 are in rs_diffuser_ros.standin.
"""
