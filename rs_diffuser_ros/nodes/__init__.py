"""ROS 2 nodes: thin adapters (message in -> core call -> message out)."""
