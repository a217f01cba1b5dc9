"""Dual randomized smoothing's router: soft targets from the experts' radii on the training
split, and the router's training (Sun, Mao, Vechev, ICLR 2026, Section 5)."""
