"""Benchmarks (`just bench`, `just bench-full`): wh against its peers, measured in one run."""
