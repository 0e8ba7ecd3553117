"""Stand-ins for the ROS 2 command-line tools on a machine without the `ros2` CLI or rviz2.

`bringup` does what `ros2 launch rs_diffuser_ros nav.launch.py` does (less rviz2), `param`
what `ros2 param get|set` does, `snapshot` renders what rviz2 would show to a PNG. They are
tools that talk to the nodes over DDS, not nodes themselves; rs_diffuser_ros/nodes holds the nodes.
"""
