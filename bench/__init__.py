"""The benchmarks: ``make bench`` / ``bench/run``; see docs/benchmarks.md."""
