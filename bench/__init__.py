"""Benchmarks of issue 6: ``make bench`` / ``bench/run``; see docs/benchmarks.md."""
