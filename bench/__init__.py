"""Benchmarks for Hotline (`make bench` → `python -m bench.run`)."""
