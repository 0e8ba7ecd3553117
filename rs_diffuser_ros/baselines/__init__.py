"""Baselines evaluated by the same command as RS-Diffuser (`python -m rs_diffuser_ros.eval`).

- behaviour cloning: an MLP policy obs -> action trained on the same dataset (behaviour_cloning.py), or,
  for the general model, one map-conditioned policy for any map (map_behaviour_cloning.py:
  `act(obs, map_input)`, the egocentric map patch the general model reads);
- diffusion planner without guidance, Decision-Diffuser style, and
- risk-neutral value guidance (alpha = 1), Diffuser style: the same checkpoint as RS-Diffuser,
  configured as in diffusion_variants.py.

The risk-averse offline-RL baselines the paper compares against, trained from the same Minari
datasets (RiskyNav or Risky PointMass; sizes come from the data), each loadable with `load(path)`
into a policy with the behaviour-cloning interface `act(obs [B, D]) -> action [B, A]`:

- CODAC (Ma et al. 2021): codac.py; O-RAAC (Urpí et al. 2021): oraac.py;
- their shared pieces: iqn.py (IQN critic, quantile-Huber loss), offline_data.py (transitions,
  normaliser), policy_file.py (safetensors policy files).

Plugging CODAC and O-RAAC into `python -m rs_diffuser_ros.eval` for RiskyNav is not done yet;
Risky PointMass has its own evaluation command (rs_diffuser_ros.eval.pointmass).
"""
