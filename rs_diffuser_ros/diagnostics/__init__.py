"""Command-line tools that measure or show the algorithm without being part of it.

benchmark.py: replanning latency (reference vs fast path) and training throughput;
plot_plans.py: the candidates and the chosen plan per risk level, from one state.
Only they import from here; core never does.
"""
