"""Benchmark fixtures and helpers: not part of the product."""
