"""Streamer tests: fast unit tests of the pure core, and end-to-end tests with real parts."""
