"""Guided few-step DDIM: the one sampling loop, its swappable per-step pieces, the guidance gradient."""
