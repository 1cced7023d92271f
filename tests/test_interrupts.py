"""Signals that stop a run between batches: held inside Keras' loops, forced by a second."""

from __future__ import annotations

import signal

import keras
import numpy as np
import pytest
from conftest import tiny_config

from involution_bench.config import config_from_dict
from involution_bench.data import DATA_DIR_ENV
from involution_bench.data.pipelines import evaluation_batch_size
from involution_bench.robustness.run import model_predict
from involution_bench.runs import load_run
from involution_bench.system.interrupts import (
    batch_end_callback,
    interrupt_was_forced,
    interrupts_between_batches,
    raise_as_interrupt,
    signals_as_interrupts,
)
from involution_bench.train.loop import prepare_run


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss="mse")
    return model


class SignalAtBatch(keras.callbacks.Callback):
    """Sends SIGTERM to this process as batch `at` begins; records what ran after it."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.ended, self.ran_on = at, [], False

    def on_train_batch_begin(self, batch, logs=None):
        self._maybe_signal(batch)

    def on_predict_batch_begin(self, batch, logs=None):
        self._maybe_signal(batch)

    def _maybe_signal(self, batch):
        if batch == self.at:
            signal.raise_signal(signal.SIGTERM)  # the handler runs before this returns
            self.ran_on = True

    def on_train_batch_end(self, batch, logs=None):
        self.ended.append(batch)

    def on_predict_batch_end(self, batch, logs=None):
        self.ended.append(batch)


def test_outside_keras_loops_a_signal_raises_at_once():
    with signals_as_interrupts(), pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)


def test_within_fit_a_signal_waits_for_the_batch_end():
    model, sender = tiny_model(), SignalAtBatch(at=2)
    x, y = np.zeros((64, 4), "float32"), np.zeros((64, 3), "float32")
    checks = [sender, batch_end_callback()]
    with signals_as_interrupts(), pytest.raises(KeyboardInterrupt), interrupts_between_batches():
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=checks)
    # The batch that saw the signal ran to its end, and nothing after it started.
    assert sender.ran_on and sender.ended == [0, 1, 2]
    assert model.optimizer.iterations.numpy() == 3


def test_the_robustness_suites_predict_stops_between_batches():
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]
    )
    sender = SignalAtBatch(at=1)
    images = np.zeros((3 * evaluation_batch_size((8, 8, 3)), 8, 8, 3), "float32")
    model.predict(images[:1], verbose=0)  # built
    with signals_as_interrupts(), pytest.raises(KeyboardInterrupt):
        keras_predict = model.predict

        def predict_with_sender(*args, callbacks=(), **kwargs):
            return keras_predict(*args, callbacks=[sender, *callbacks], **kwargs)

        model.predict = predict_with_sender
        model_predict(model)(images)
    assert sender.ran_on and sender.ended == [0, 1]


def test_a_second_signal_forces_an_exit_at_once():
    reached = []
    with signals_as_interrupts(), interrupts_between_batches():
        signal.raise_signal(signal.SIGTERM)
        reached.append("held")
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        reached.append("forced")
    # The forced exit used up the request: leaving the scope raises nothing more.
    assert reached == ["held", "forced"]
    assert interrupt_was_forced()
    with interrupts_between_batches():  # a new scope starts unforced
        assert not interrupt_was_forced()


class ForcedAmidScopes(keras.callbacks.Callback):
    """Ctrl-C twice as batch 1 begins, the second landing as TensorFlow exits a device
    scope: it then raises its scope error, not the KeyboardInterrupt."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1:
            signal.raise_signal(signal.SIGTERM)
            try:
                signal.raise_signal(signal.SIGTERM)
            except KeyboardInterrupt:
                raise RuntimeError("Exiting device scope without proper scope nesting") from None


def test_a_forced_exit_leaves_the_run_interrupted_whatever_error_it_raised(
    monkeypatch, cifar_dir, tmp_path
):
    monkeypatch.setenv(DATA_DIR_ENV, str(cifar_dir))
    run = prepare_run(config_from_dict(tiny_config(epochs=2, batch_size=8)), tmp_path)
    with signals_as_interrupts(), pytest.raises(KeyboardInterrupt):
        run.fit(callbacks=[ForcedAmidScopes()])
    assert load_run(run.run_dir).status == "interrupted"


def test_a_signal_after_the_last_batch_is_raised_when_the_scope_ends():
    reached = []
    with signals_as_interrupts(), pytest.raises(KeyboardInterrupt), interrupts_between_batches():
        signal.raise_signal(signal.SIGTERM)
        reached.append("after the signal")
    assert reached == ["after the signal"]
    with signals_as_interrupts(), interrupts_between_batches():  # nothing left over
        pass


@pytest.fixture
def sigint(request):
    """SIGINT set to `request.param` for the test, as the process started with it."""
    previous = signal.signal(signal.SIGINT, request.param)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("sigint", [signal.default_int_handler], indirect=True)
def test_ctrl_c_is_handled_as_sigterm_is(sigint):
    with signals_as_interrupts():
        assert signal.getsignal(signal.SIGINT) is raise_as_interrupt
        assert signal.getsignal(signal.SIGTERM) is raise_as_interrupt
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("sigint", [signal.SIG_IGN], indirect=True)
def test_a_sigint_the_process_was_started_ignoring_stays_ignored(sigint):
    with signals_as_interrupts():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is raise_as_interrupt
