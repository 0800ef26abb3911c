"""Centralized generative baselines: dark-knowledge generator distillation, single-fold and progressive
diffusion distillation, and the training of the teachers they start from.

Submodules import torch (and, for diffusion, diffusers) on use; this package itself imports nothing heavy.
"""
