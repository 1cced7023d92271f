"""Training: the loop, its setup, callbacks, optimizers, losses, distribution, evaluation.

- `setup`: data, strategy, pipelines and the compiled model, shared by new and
  resumed runs;
- `loop`: `prepare_run`, `prepare_resume` and `train`, into a run folder;
- `callbacks`: the epoch recorder (checkpoints, best model, early stopping) and
  TensorBoard;
- `optimizers`, `losses`, `distribute`: what `train.*` in a config asks for;
- `evaluate`: a saved model on its dataset's test set;
- `progress`: what a person sees while a run trains.
"""
