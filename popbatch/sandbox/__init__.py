"""A local POP simulator: the independent referee for tests, demo and benchmarks."""
