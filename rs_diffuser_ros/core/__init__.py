"""RS-Diffuser algorithm: diffusion planner, inverse dynamics, distributional critic, risk guidance. No ROS imports."""
