"""The C++ CPU kernels (involution, local attention, narrow batch norm, augmentation,
strided subsampling), compiled on first use and cached.

`native_ops()` returns the loaded op library, building it when needed with
the machine's C++ compiler ($CXX, else g++, c++ or clang++) against the
installed TensorFlow: `involution_ops.cc`, the TensorFlow ops, over
the `*_kernels.h` headers beside it, their arithmetic. Two builds are tried, in order:

- "tuned": -O3 for this CPU (-march=native), minus the ISA extensions that
  TensorFlow's bundled Eigen headers cannot compile (AVX512-FP16 under
  g++ 12 with TensorFlow 2.21; see `HEADER_INCOMPATIBLE`);
- "portable": -O3 for any x86-64 CPU with AVX2 and FMA (plain x86-64
  without them), used when the tuned build fails, which is said in one line.

The shared library is cached in $INVBENCH_CACHE_DIR (default:
~/.cache/invbench, or $XDG_CACHE_HOME/invbench) under a name keyed by the
TensorFlow version, the source, the compiler and its version, the exact
flags and the CPU, so a change of any rebuilds it and users never run a
build step. A build that failed leaves a `.failed` marker under the same
key, so later processes go straight to the next build (or the fallback)
instead of failing again, until one of those inputs changes.

When the kernel cannot be had (no compiler, failed builds, or
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
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from involution_bench.system.cache import CACHE_ENV as CACHE_ENV  # tests set it through here
from involution_bench.system.cache import cache_dir
from involution_bench.system.machine import cpu_fields, cpu_flags

SOURCE = Path(__file__).with_name("involution_ops.cc")
# The kernels' arithmetic, which the source includes: a change to any of it
# rebuilds too. Every header beside the source, so a new one cannot be left
# out of the cache key (one was, until a test that mutated it still passed).
HEADERS = tuple(sorted(SOURCE.parent.glob("*.h")))
NATIVE_ENV = "INVBENCH_NATIVE"
COMPILERS = ("g++", "c++", "clang++")
BUILD_TIMEOUT_S = 600
# /proc/cpuinfo flag -> the switch that leaves it out: -march=native would
# enable these, and TensorFlow's Eigen headers do not compile with them on.
HEADER_INCOMPATIBLE = {"avx512_fp16": "-mno-avx512fp16"}


class NativeBuildError(RuntimeError):
    """Why the native kernel is not available."""


@dataclass(frozen=True)
class Build:
    """One way to compile the kernel: a name for people, and its target flags."""

    name: str
    flags: tuple[str, ...]


def find_compiler() -> str | None:
    configured = os.environ.get("CXX")
    candidates = (configured,) if configured else COMPILERS
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def builds(compiler: str) -> list[Build]:
    """The builds to try, best first."""
    return [Build("tuned", tuned_flags(compiler)), Build("portable", portable_flags())]


def tuned_flags(compiler: str) -> tuple[str, ...]:
    """-march=native, less the extensions the headers cannot take (when the compiler knows them)."""
    flags = ["-march=native"]
    present = cpu_flags()
    if "avx512f" in present and _compiler_accepts(compiler, "-mprefer-vector-width=512"):
        # GCC's tuning for recent Xeons picks 256-bit vectors; the kernels' loops
        # are sized for whole 512-bit registers (16 floats).
        flags.append("-mprefer-vector-width=512")
    for cpu_flag, switch in HEADER_INCOMPATIBLE.items():
        if cpu_flag in present and _compiler_accepts(compiler, switch):
            flags.append(switch)
    return tuple(flags)


def portable_flags() -> tuple[str, ...]:
    """AVX2 and FMA where the CPU has them (every x86-64 server since 2013); else the default."""
    if platform.machine() in ("x86_64", "AMD64") and {"avx2", "fma"} <= cpu_flags():
        return ("-mavx2", "-mfma")
    return ()


def compile_command(compiler: str, output: Path, build: Build | None = None) -> list[str]:
    build = build or builds(compiler)[0]
    return [
        compiler,
        "-shared",
        "-fPIC",
        "-O3",
        *build.flags,
        "-fopenmp-simd",  # honours the `omp simd` reductions only; no OpenMP runtime
        "-ffp-contract=fast",
        *tf.sysconfig.get_compile_flags(),
        f"-I{HEADERS[0].parent}",
        str(SOURCE),
        "-o",
        str(output),
        *tf.sysconfig.get_link_flags(),
    ]


def library_path(compiler: str, build: Build | None = None) -> Path:
    """Where this source, built by this command for this CPU and TensorFlow, is cached."""
    build = build or builds(compiler)[0]
    digest = hashlib.sha256()
    for source in (SOURCE, *HEADERS):
        digest.update(source.read_bytes())
    digest.update(" ".join(compile_command(compiler, Path("out.so"), build)).encode())
    digest.update(_compiler_version(compiler).encode())
    digest.update(_cpu_signature().encode())
    return cache_dir() / f"involution-tf{tf.__version__}-{build.name}-{digest.hexdigest()[:16]}.so"


def failed_marker(library: Path) -> Path:
    return library.with_suffix(".failed")


def build_library() -> tuple[Path, Build]:
    """The cached shared library, compiled first if it is not there yet, and its build.

    Tries each of `builds()` in turn, skipping those that failed before with
    the same inputs, and says in one line when it falls back to the next.
    """
    compiler = find_compiler()
    if compiler is None:
        raise NativeBuildError("no C++ compiler found (install g++ or set CXX)")
    attempts = builds(compiler)
    problems = []
    for index, build in enumerate(attempts):
        target = library_path(compiler, build)
        if target.is_file():
            return target, build
        marker = failed_marker(target)
        if marker.is_file():
            problems.append(f"the {build.name} build failed before (delete {marker} to retry)")
            continue
        try:
            return _compile(compiler, build, target), build
        except NativeBuildError as exc:
            problems.append(str(exc))
            if index + 1 < len(attempts):
                following = attempts[index + 1]
                print(
                    f"invbench: {exc}; retrying once with the {following.name} build "
                    f"({' '.join(following.flags) or 'default target'})",
                    file=sys.stderr,
                )
    raise NativeBuildError("; ".join(problems))


def _compile(compiler: str, build: Build, target: Path) -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NativeBuildError(f"cannot create {target.parent} ({exc.strerror})") from None
    # Concurrent builds each write their own file; the rename makes one win whole.
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    log_path = target.with_suffix(".log")
    print(
        "invbench: compiling the native kernels for involution, attention, batch norm "
        f"and augmentation ({build.name} build, once per TensorFlow version)...",
        file=sys.stderr,
    )
    try:
        result = subprocess.run(
            compile_command(compiler, temporary, build),
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise NativeBuildError(f"the compiler could not run ({exc})") from None
    if result.returncode != 0:
        log_path.write_text(result.stdout + result.stderr)
        temporary.unlink(missing_ok=True)
        # Remembered, so that every later process does not pay for the same failure.
        failed_marker(target).write_text(f"compiler output in {log_path}\n")
        raise NativeBuildError(f"the build failed ({build.name}; compiler output in {log_path})")
    os.replace(temporary, target)
    return target


@functools.lru_cache(maxsize=1)
def native_ops():
    """The op library, or None (said once) when the native kernel is unavailable."""
    if os.environ.get(NATIVE_ENV, "1").strip() == "0":
        _fall_back(f"disabled by {NATIVE_ENV}=0")
        return None
    try:
        path, build = build_library()
        library = tf.load_op_library(str(path))
    except NativeBuildError as exc:
        _fall_back(str(exc))
        return None
    except (tf.errors.NotFoundError, OSError) as exc:
        _fall_back(f"the built library does not load ({exc})")
        return None
    _register_gradient(library)
    library.invbench_build = build.name  # "tuned" or "portable", for the records
    return library


def loaded_build() -> str | None:
    """Which build serves this process ("tuned", "portable"); None when none was loaded."""
    if native_ops.cache_info().currsize == 0:
        return None  # nothing asked for it: do not build it just to say so
    library = native_ops()
    return None if library is None else library.invbench_build


def _register_gradient(library) -> None:
    @tf.RegisterGradient("InvbenchNarrowBatchNorm")
    def _narrow_batch_norm_gradient(op, grad, *_statistics):  # the statistics: no gradient
        x, gamma, _ = op.inputs
        _, mean, variance = op.outputs
        return library.invbench_narrow_batch_norm_grad(
            grad, x, gamma, mean, variance, epsilon=op.get_attr("epsilon")
        )

    @tf.RegisterGradient("InvbenchSubsample")
    def _subsample_gradient(op, grad):
        strides = {name: op.get_attr(name) for name in ("row_stride", "col_stride")}
        return library.invbench_subsample_grad(grad, op.inputs[0], **strides)

    @tf.RegisterGradient("InvbenchSpanInvolution")
    def _span_involution_gradient(op, grad):
        inputs, features, weights, bias = op.inputs
        attrs = {name: op.get_attr(name) for name in ("kernel_size", "stride", "groups")}
        input_grad = library.invbench_span_involution_input_grad(
            grad, features, weights, bias, inputs, **attrs
        )
        return [
            input_grad,
            *library.invbench_span_involution_params_grad(grad, inputs, features, weights, **attrs),
        ]

    @tf.RegisterGradient("InvbenchInvolution")
    def _involution_gradient(op, grad):
        inputs, kernel = op.inputs
        attrs = {name: op.get_attr(name) for name in ("kernel_size", "stride", "groups")}
        return [
            library.invbench_involution_input_grad(grad, kernel, inputs, **attrs),
            library.invbench_involution_kernel_grad(grad, inputs, **attrs),
        ]


def _fall_back(reason: str) -> None:
    print(
        f"invbench: native kernels unavailable: {reason}; using pure TensorFlow",
        file=sys.stderr,
    )


def _cpu_signature() -> str:
    """-march=native code only runs where the CPU has the same features."""
    fields = cpu_fields()
    return platform.machine() + fields.get("model name", "") + fields.get("flags", "")


@functools.lru_cache(maxsize=8)
def _compiler_accepts(compiler: str, switch: str) -> bool:
    try:
        result = subprocess.run(
            [compiler, switch, "-x", "c++", "-fsyntax-only", os.devnull],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


@functools.lru_cache(maxsize=8)
def _compiler_version(compiler: str) -> str:
    """The compiler's own words about its version: an upgrade rebuilds (and retries)."""
    try:
        result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
