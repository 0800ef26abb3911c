"""The Flower-free half of a federation: its config sections, each client's data and noisy labels, and
one client's local round. ``clients/`` and ``strategies/`` only move these through Flower messages."""
