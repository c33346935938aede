"""Streamer benchmarks: accuracy, latency, cost and concurrency."""
