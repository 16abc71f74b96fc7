"""Keras's own layer tests, run against this project's layers (see plugin.py)."""
