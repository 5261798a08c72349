"""Analyses of datasets and trained models."""
