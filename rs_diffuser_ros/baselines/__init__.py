"""Baselines evaluated by the same command as RS-Diffuser (`python -m rs_diffuser_ros.eval`).

- behaviour cloning: an MLP policy obs -> action trained on the same dataset (behaviour_cloning.py);
- diffusion planner without guidance, Decision-Diffuser style, and
- risk-neutral value guidance (alpha = 1), Diffuser style: the same checkpoint as RS-Diffuser,
  configured as in diffusion_variants.py.

Not implemented yet: the risk-averse offline-RL baselines the paper compares against,
O-RAAC (Urpí et al. 2021) and CODAC (Ma et al. 2021).
"""
