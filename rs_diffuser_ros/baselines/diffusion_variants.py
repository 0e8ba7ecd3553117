"""The diffusion-planner baselines are the RS-Diffuser checkpoint with guidance and selection turned off
or made risk-neutral; one trained model, so any difference comes from the inference-time choice alone.
"""
from __future__ import annotations

# Decision-Diffuser style: sample one plan (no candidates to select among by the critic) and do
# not push it along any value gradient. The denoiser and inverse dynamics are used as trained. No route
# candidates and no carried plan: with one candidate there is no choice for the critic, and that one would be the
# way round's follower (a scripted detour) or last tick's plan, not the denoiser's sample.
UNGUIDED_PLANNER_SETTINGS = {"guidance_scale": 0.0, "candidates": 1, "route_candidates": 0, "carry_plan": False}

# Diffuser style value guidance: the critic's mean return (CVaR at alpha = 1) guides and selects.
RISK_NEUTRAL_ALPHA = 1.0
