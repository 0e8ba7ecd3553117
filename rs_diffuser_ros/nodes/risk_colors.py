"""One colour scale for candidate plans, shared by the rviz markers and the snapshot PNG.

Candidates are coloured by their risk value rho_alpha (a return measure: higher is
better) relative to the other candidates of the same replan: red = worst, yellow =
middle, green = best. Relative, because the absolute scale of predicted returns depends
on the model and the layout; the snapshot's colour bar shows the absolute values.
"""
import numpy as np

# Colour stops from worst (0) to best (1), RGB in [0, 1].
_STOPS = np.array([[0.84, 0.10, 0.11], [1.00, 0.85, 0.10], [0.10, 0.65, 0.25]])


def normalise_risk(risk_values) -> np.ndarray:
    """Map risk values to [0, 1] (0 = worst candidate, 1 = best); all equal -> 0.5."""
    values = np.asarray(risk_values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite(low) or not np.isfinite(high) or high - low < 1e-12:
        return np.full(values.shape, 0.5)
    return (values - low) / (high - low)


def risk_rgb(level) -> np.ndarray:
    """RGB colours [..., 3] for normalised levels in [0, 1] (piecewise linear red-yellow-green)."""
    t = np.clip(np.asarray(level, dtype=np.float64), 0.0, 1.0) * (len(_STOPS) - 1)
    lower = np.minimum(np.floor(t).astype(int), len(_STOPS) - 2)
    frac = (t - lower)[..., None]
    return _STOPS[lower] * (1.0 - frac) + _STOPS[lower + 1] * frac
