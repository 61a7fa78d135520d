"""Benchmarks: OURS vs the 2014 rpcdaemon pattern on the simulator (see RESULTS.md)."""
