"""Training: data-set windows, the three losses, EMA, the loop and its CLI (`python -m rs_diffuser_ros.core.training.train`)."""
