"""Benchmarks import the package from the checkout."""
