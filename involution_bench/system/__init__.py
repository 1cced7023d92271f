"""The machine and the process: its CPU and ISA, quiet TensorFlow start-up, signals,
provenance.

Nothing here imports TensorFlow at module level: `quiet.import_tensorflow`
loads it when a command needs it.
"""
