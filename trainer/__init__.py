"""Standalone CLIP-LIT trainer: ``python -m trainer --help``."""
