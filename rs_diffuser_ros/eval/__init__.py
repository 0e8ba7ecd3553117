"""Closed-loop evaluation of RS-Diffuser and its baselines on RiskyNav: `python -m rs_diffuser_ros.eval`.

settings.py parses what to evaluate, lockstep.py and runner.py run the episodes (batched, in
worker processes), metrics.py and claims.py turn them into numbers with 95% CIs, report.py and
plots.py write them out.
"""
