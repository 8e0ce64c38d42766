"""Load tests (locust) and benchmarks (``python -m loadtests.bench``) for smslab. See README.md."""
