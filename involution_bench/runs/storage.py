"""Files on disk, written so that a reader never sees half of one.

Every file is written to a temporary sibling, flushed, and renamed into
place; a model is saved the same way. Folders are created new (never reused,
even within one second), and an output root that cannot be used is one line
naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from involution_bench.errors import RunError


def ensure_root(root: Path) -> Path:
    """Create the output root, or explain why it cannot be used."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(str(root), f"cannot create the output folder ({exc.strerror})") from None
    if not os.access(root, os.W_OK | os.X_OK):
        read_only = os.statvfs(root).f_flag & os.ST_RDONLY
        cause = "read-only file system" if read_only else "permission denied"
        raise RunError(str(root), f"output folder is not writable ({cause})")
    return root


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now()).strftime("%Y%m%d-%H%M%S")


def create_run_dir(root: Path, name: str, now: datetime | None = None) -> Path:
    """A new, empty run folder; never reuses an existing one, even within the same second."""
    return create_unique_dir(root, f"{timestamp(now)}-{name}")


def create_unique_dir(root: Path, stem: str) -> Path:
    """`root/stem`, or `root/stem-2`, `-3`, ... when taken: a new folder, created here."""
    ensure_root(root)
    attempt = 1
    while True:
        suffix = "" if attempt == 1 else f"-{attempt}"
        candidate = root / f"{stem}{suffix}"
        try:
            candidate.mkdir()
        except FileExistsError:
            attempt += 1
            continue
        except OSError as exc:
            raise RunError(str(candidate), f"cannot create folder ({exc.strerror})") from None
        return candidate


def write_atomic(path: Path, content: str | bytes) -> None:
    """Write to a temporary sibling, flush it to disk, then rename over `path`."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)  # a full disk leaves no half-written file behind
        _raise_naming(exc, path)


def save_atomic(path: Path, save: Callable[[Path], None], suffix: str = "") -> None:
    """`save(temporary)`, then rename over `path`: a reader finds the old file or the
    whole new one. `suffix` ends the temporary name (Keras insists on `.keras`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{suffix}")
    try:
        save(temporary)
        temporary.replace(path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        _raise_naming(exc, path)


def _raise_naming(exc: BaseException, path: Path) -> None:
    """Re-raise `exc`; an OSError that names no file (Keras' and zipfile's full-disk
    errors do not) is made to name `path`, so the command can say in one line what
    failed where."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
        raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from exc
    raise exc


def write_json(path: Path, payload: Any) -> None:
    write_atomic(path, json.dumps(payload, indent=2) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(str(path), f"cannot be read ({exc})") from None
