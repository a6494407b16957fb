"""Benchmarks of the deployment and the backend (not run in CI); `benchmarks/run` runs them."""
