"""Ctrl-C and SIGTERM that stop a run between batches, never inside Keras' bookkeeping.

Python raises a signal's KeyboardInterrupt at whatever bytecode the main
thread is on. Inside Keras' loops that can be the middle of a `tf.device`
scope's enter or exit, and TensorFlow then raises "Exiting device scope
without proper scope nesting" instead: a traceback, not a cleanly stopped
run. So within `interrupts_between_batches()` the first signal is only
recorded, and `batch_end_callback()` raises it at the next batch's end (or
the scope's end), where every scope is whole. A second signal raises at
once, so a user can still force an exit; an error it leaves behind (that
scope error) is still an interrupt to the run (`interrupt_was_forced`).

Nothing here imports Keras at module level; the callback builds it when asked.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class _Requests:
    """The process's one record: how deep the deferring scopes are, and a held signal."""

    deferring = 0
    pending: int | None = None
    forced = False  # a second signal raised at once, inside a deferring scope


def raise_as_interrupt(signum: int, frame: Any) -> None:
    """The handler: hold the first signal inside a deferring scope, else raise now."""
    if _Requests.deferring and _Requests.pending is None:
        _Requests.pending = signum
        return
    _Requests.forced = bool(_Requests.deferring)
    _Requests.pending = None
    raise KeyboardInterrupt


def interrupt_was_forced() -> bool:
    """Whether a second signal forced its way into the last deferring scope: whatever
    error it ended with, the user stopped it."""
    return _Requests.forced


def raise_if_requested() -> None:
    """Raise the held signal as a KeyboardInterrupt, if there is one."""
    if _Requests.pending is not None:
        _Requests.pending = None
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_between_batches() -> Iterator[None]:
    """Within it, a signal waits for `raise_if_requested` (or the scope's end)."""
    if not _Requests.deferring:
        _Requests.forced = False
    _Requests.deferring += 1
    try:
        yield
    finally:
        _Requests.deferring -= 1
    if not _Requests.deferring:
        raise_if_requested()  # a signal after the last batch still stops what follows


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGINT and SIGTERM (a killed job, a closed session) stop work as Ctrl-C does.

    A SIGINT that the process was started ignoring (`nohup`, a background job)
    stays ignored. Off the main thread signals cannot be set, and are left alone.
    """
    wanted = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        wanted.append(signal.SIGINT)
    previous = {}
    try:
        for signum in wanted:
            previous[signum] = signal.signal(signum, raise_as_interrupt)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def batch_end_callback() -> Any:
    """A Keras callback that raises a held signal at every batch's and epoch's end.

    Put it last in a loop's callbacks, so the others finish the batch (and an
    epoch's checkpoint) first.
    """
    import keras

    def check(*args: Any, **kwargs: Any) -> None:
        raise_if_requested()

    return keras.callbacks.LambdaCallback(
        on_train_batch_end=check,
        on_test_batch_end=check,
        on_predict_batch_end=check,
        on_epoch_end=check,
    )
