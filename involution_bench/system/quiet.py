"""Importing TensorFlow without its start-up chatter on the terminal.

TensorFlow's C++ runtime writes several lines straight to file descriptor 2
when it loads (absl's "All log messages before absl::InitializeLog()",
oneDNN's notice, "Could not find cuda drivers", the CPU-feature notice) and
again when its devices first start ("failed call to cuInit"), whatever
TF_CPP_MIN_LOG_LEVEL says about some of them. Python's `sys.stderr` cannot
catch them, so the descriptor itself is pointed at a file for that time.
Afterwards every captured line that is not known chatter is written back, so
real errors still reach the user, and a failed import shows all of it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Lines TensorFlow prints on every start on a machine without a GPU.
CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IW]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\]"  # glog info and warning lines
    r"|E\d{4} [\d:. ]+\d+ cuda_\w+\.cc:\d+\] failed call to cuInit"
    r"|To enable the following instructions: .* rebuild TensorFlow"
    r")"
)


def is_chatter(line: str) -> bool:
    return bool(CHATTER.match(line))


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Hold back what is written to file descriptor 2; write back all but chatter."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines() if failed or not is_chatter(line)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


class ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's "N out of the last N calls ... triggered tf.function retracing".

    invbench builds one model after another in a process (`bench model`, sweeps,
    `eval`), and each model's step is a new tf.function traced once, which TF
    counts as retracing. The advice it prints is for a loop that re-creates
    one function, so here it is always a false alarm.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def hold_back_expected_retracing() -> None:
    logger = logging.getLogger("tensorflow")  # the logger tf.get_logger() returns
    if not any(isinstance(kept, ExpectedRetracing) for kept in logger.filters):
        logger.addFilter(ExpectedRetracing())


def import_tensorflow() -> None:
    """Import TensorFlow and Keras and start TF's devices, holding back their chatter.

    Later `import tensorflow` statements find the loaded module, so calling
    this once before any of them keeps the whole process quiet.
    """
    hold_back_expected_retracing()
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    with filtered_stderr():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_logical_devices()  # starts the runtime: the cuInit line comes here
