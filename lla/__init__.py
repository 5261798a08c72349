"""lla-repro: reproducibility pipeline for LLA (Loss-aware Label Assignment, Ge et al.)."""

__version__ = "0.1.0"
