"""Throughput benchmarks (`scripts/benchmark.py`): the CPU data pipeline alone (`data_pipeline`), and training
steps: the model alone, and pretraining fed by CPU or GPU views (`training`); `report` writes one JSON.
Numbers are benchmarks, never tests.
"""
