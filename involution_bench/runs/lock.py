"""One process per run folder: an OS lock that dies with its process.

Training and resuming hold an exclusive `flock` on the run folder's `.lock`
file. `flock` locks belong to the open file and vanish when the process
exits, even by SIGKILL, so a stale lock can never block a resume.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from involution_bench.errors import RunError
from involution_bench.runs.files import LOCK_FILE


class RunLock:
    """The exclusive right to write a run folder, held by one process at a time.

    `flock` locks belong to the open file and vanish when the process exits,
    even by SIGKILL, so a stale lock cannot block anyone. The lock file names
    its holder, so a refusal can say which process to wait for, and it is
    removed on release, so a finished run folder holds only its results.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._handle = None

    def acquire(self) -> RunLock:
        while True:
            try:
                handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115
            except OSError as exc:
                where = str(self.path.parent)
                raise RunError(where, f"cannot be locked ({exc.strerror})") from None
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(handle)
                handle.close()
                raise RunError(
                    str(self.path.parent),
                    f"is being trained by {holder}; wait for it or stop it first",
                ) from None
            # A holder that released meanwhile removed the file we locked: lock the new one.
            if self._same_file(handle):
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle
        return self

    def _same_file(self, handle) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)  # before closing: nobody can lock it after
            self._handle.close()  # closing the file drops the lock
            self._handle = None


def _lock_holder(handle, patience_s: float = 2.0) -> str:
    """Who holds the lock, as the holder wrote it; it writes just after locking,
    so a lock taken a moment ago may need a moment more to name its process."""
    deadline = time.monotonic() + patience_s
    while True:
        handle.seek(0)
        holder = handle.read().strip()
        if holder or time.monotonic() > deadline:
            return holder or "another process"
        time.sleep(0.05)
