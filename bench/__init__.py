"""Benchmarks: scripts that print figures. Never timed tests (see README, "Performance")."""
