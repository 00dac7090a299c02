"""Benchmarks of leakgate against the floor of plain PyTorch and against peer libraries.

`python -m bench.run [--quick]` runs every benchmark once, side by side on one machine, and
writes `bench/results/`; `bench/README.md` says what each number means.
"""
