"""Regression tests for security findings, and bounded fuzzing of every RPC."""
