"""Benchmarks, each figure named with its CPU: `invbench bench op|model|layers|cli`.

- `timing`: medians after warm-up, and waiting for results;
- `op`, `attention`: the involution op and attention's neighbourhood part;
- `model`: whole training steps against their baselines;
- `layers`: each layer of a model timed alone;
- `startup`: how long the command line takes to answer.
"""
