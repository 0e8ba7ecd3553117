"""RiskyNav: PyBullet risky-navigation simulation (gymnasium). Knows nothing of ROS."""
