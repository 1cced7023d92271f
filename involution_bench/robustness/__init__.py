"""Robustness: shifts, CIFAR-10-C-style corruptions and calibration, for every run.

- `corruptions/`: the 15 corruptions at 5 severities (NumPy, SciPy, Pillow);
- `shifts`: circular shifts, zero-filled translations, rotations;
- `calibration`: expected calibration error, NLL, reliability bins;
- `cache`: generated sets on disk, keyed by data, corruption code and seed;
- `suite`: every measurement on one model (`robustness_report`);
- `figures`: a run's `robustness.png` and `reliability.png`;
- `run`: the suite on a run folder (`invbench robustness`, `train.robustness`).

`docs/robustness.md` defines each measurement with its source and lists
where it departs from the original protocols.
"""
