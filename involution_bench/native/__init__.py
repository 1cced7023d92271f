"""The fused C++ CPU kernel for involution, compiled on first use and cached.

`native_ops()` returns the loaded op library, building it when needed with
the machine's C++ compiler ($CXX, else g++, c++ or clang++) against the
installed TensorFlow, at -O3 for this CPU (-march=native). The shared library
is cached in $INVBENCH_CACHE_DIR (default: ~/.cache/invbench, or
$XDG_CACHE_HOME/invbench) under a name keyed by the TensorFlow version, the
source, the compile command and the CPU, so a change of any rebuilds it and
users never run a build step.

When the kernel cannot be had (no compiler, a failed build, or
INVBENCH_NATIVE=0), it says so once, in one line on standard error, and
returns None: the layer then uses its pure-TensorFlow path.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import tensorflow as tf

SOURCE = Path(__file__).with_name("involution_ops.cc")
NATIVE_ENV = "INVBENCH_NATIVE"
CACHE_ENV = "INVBENCH_CACHE_DIR"
COMPILERS = ("g++", "c++", "clang++")
BUILD_TIMEOUT_S = 600


class NativeBuildError(RuntimeError):
    """Why the native kernel is not available."""


def cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "invbench"


def find_compiler() -> str | None:
    configured = os.environ.get("CXX")
    candidates = (configured,) if configured else COMPILERS
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def compile_command(compiler: str, output: Path) -> list[str]:
    return [
        compiler,
        "-shared",
        "-fPIC",
        "-O3",
        "-march=native",
        "-fopenmp-simd",  # honours the `omp simd` reductions only; no OpenMP runtime
        "-ffp-contract=fast",
        *tf.sysconfig.get_compile_flags(),
        str(SOURCE),
        "-o",
        str(output),
        *tf.sysconfig.get_link_flags(),
    ]


def library_path(compiler: str) -> Path:
    """Where this source, built by this command for this CPU and TensorFlow, is cached."""
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(" ".join(compile_command(compiler, Path("out.so"))).encode())
    digest.update(_cpu_signature().encode())
    return cache_dir() / f"involution-tf{tf.__version__}-{digest.hexdigest()[:16]}.so"


def build_library() -> Path:
    """The cached shared library, compiled first if it is not there yet."""
    compiler = find_compiler()
    if compiler is None:
        raise NativeBuildError("no C++ compiler found (install g++ or set CXX)")
    target = library_path(compiler)
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NativeBuildError(f"cannot create {target.parent} ({exc.strerror})") from None
    # Concurrent builds each write their own file; the rename makes one win whole.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    log_path = target.with_suffix(".log")
    print(
        "invbench: compiling the native involution kernel (once per TensorFlow version)...",
        file=sys.stderr,
    )
    try:
        result = subprocess.run(
            compile_command(compiler, temporary),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeBuildError(f"the compiler could not run ({exc})") from None
    if result.returncode != 0:
        log_path.write_text(result.stdout + result.stderr)
        temporary.unlink(missing_ok=True)
        raise NativeBuildError(f"the build failed (compiler output in {log_path})")
    os.replace(temporary, target)
    return target


@functools.lru_cache(maxsize=1)
def native_ops():
    """The op library, or None (said once) when the native kernel is unavailable."""
    if os.environ.get(NATIVE_ENV, "1").strip() == "0":
        _fall_back(f"disabled by {NATIVE_ENV}=0")
        return None
    try:
        library = tf.load_op_library(str(build_library()))
    except NativeBuildError as exc:
        _fall_back(str(exc))
        return None
    except (tf.errors.NotFoundError, OSError) as exc:
        _fall_back(f"the built library does not load ({exc})")
        return None
    _register_gradient(library)
    return library


def _register_gradient(library) -> None:
    @tf.RegisterGradient("InvbenchInvolution")
    def _involution_gradient(op, grad):
        inputs, kernel = op.inputs
        attrs = {name: op.get_attr(name) for name in ("kernel_size", "stride", "groups")}
        return [
            library.invbench_involution_input_grad(grad, kernel, inputs, **attrs),
            library.invbench_involution_kernel_grad(grad, inputs, kernel, **attrs),
        ]


def _fall_back(reason: str) -> None:
    print(
        f"invbench: native involution kernel unavailable: {reason}; using pure TensorFlow",
        file=sys.stderr,
    )


def _cpu_signature() -> str:
    """-march=native code only runs where the CPU has the same features."""
    signature = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith(("model name", "flags")):
                    signature += line
                if line.strip() == "":
                    break  # the first processor is enough
    except OSError:
        pass
    return signature
