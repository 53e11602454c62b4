"""Benchmark harness of the inventory services: load generator, stack control, checks, reports."""
