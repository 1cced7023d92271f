"""The native kernel: built where a compiler exists, cached, and a clean fallback."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from involution_bench.ops import native
from involution_bench.system.machine import cpu_flags


def test_builds_and_loads_wherever_a_compiler_exists():
    if native.find_compiler() is None or os.environ.get(native.NATIVE_ENV) == "0":
        pytest.skip("no C++ compiler here, or the native kernel is turned off")
    assert native.native_ops() is not None
    # The tuned build compiles on every CPU kind seen so far (AVX2 to AVX512-FP16 and AMX).
    assert native.loaded_build() == "tuned"
    assert native.library_path(native.find_compiler()).is_file()


def test_the_cache_name_follows_tensorflow_and_the_source(monkeypatch, tmp_path):
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    path = native.library_path("g++")
    assert path.parent == tmp_path
    assert path.name.startswith("involution-tf") and path.suffix == ".so"
    changed = tmp_path / "changed.cc"
    changed.write_text(native.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    assert native.library_path("g++") != path
    header = tmp_path / "changed.h"
    header.write_text(native.HEADERS[0].read_text() + "\n// changed\n")
    before = native.library_path("g++")
    monkeypatch.setattr(native, "HEADERS", (header,))
    assert native.library_path("g++") != before


def test_every_header_the_source_includes_is_in_the_cache_key():
    # A header missing from HEADERS would leave a stale library in use after it changed.
    sources = [native.SOURCE, *native.HEADERS]
    local = {
        line.split('"')[1]
        for source in sources
        for line in source.read_text().splitlines()
        if line.startswith('#include "') and not line.startswith('#include "tensorflow/')
    }
    assert local, "the source includes its kernels' headers"
    assert local <= {header.name for header in native.HEADERS}
    assert "attention_grad_kernels.h" in local


def test_a_failed_build_is_explained_with_its_log(monkeypatch, tmp_path):
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.raises(native.NativeBuildError, match="the build failed"):
        native.build_library()
    assert not list(tmp_path.glob("*.so"))


def test_no_compiler_is_explained(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    with pytest.raises(native.NativeBuildError, match="no C\\+\\+ compiler found"):
        native.build_library()


def test_turned_off_it_says_so_once_and_pure_tensorflow_computes(tmp_path):
    script = (
        "import numpy as np, tensorflow as tf\n"
        "from involution_bench.ops import involution\n"
        "x = tf.ones((1, 5, 5, 4)); k = tf.ones((1, 5, 5, 9, 2))\n"
        "a = involution(x, k, 3, 1, 2); b = involution(x, k, 3, 1, 2)\n"
        "print(float(tf.reduce_sum(a)), float(tf.reduce_sum(b)))\n"
    )
    environment = {**os.environ, native.NATIVE_ENV: "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment
    )
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("invbench:")]
    assert said == [
        "invbench: native kernels unavailable: disabled by INVBENCH_NATIVE=0; using pure TensorFlow"
    ]
    # Along each axis the 5 positions see 2+3+3+3+2 = 13 taps: 13 * 13 * 4 channels.
    assert result.stdout.split() == ["676.0", "676.0"]


def test_a_failed_tuned_build_is_retried_once_with_the_portable_one(tmp_path):
    """The first attempt is forced to fail; the retry must give a kernel that computes."""
    if native.find_compiler() is None:
        pytest.skip("no C++ compiler here")
    script = (
        "import tensorflow as tf\n"
        "from involution_bench.ops import native\n"
        "native.tuned_flags = lambda compiler: ('-march=native', '-fno-such-invbench-flag')\n"
        "from involution_bench.ops import involution\n"
        "x = tf.ones((1, 5, 5, 4)); k = tf.ones((1, 5, 5, 9, 2))\n"
        "total = float(tf.reduce_sum(involution(x, k, 3, 1, 2, 'native')))\n"
        "print(native.loaded_build(), total)\n"
    )
    environment = {**os.environ, native.CACHE_ENV: str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop(native.NATIVE_ENV, None)

    def run():
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=environment
        )
        assert result.returncode == 0, result.stderr
        said = [line for line in result.stderr.splitlines() if line.startswith("invbench:")]
        return result.stdout.split(), said

    output, said = run()
    assert output == ["portable", "676.0"]  # 13 * 13 taps * 4 channels, as above
    compiling = (
        "invbench: compiling the native kernels for involution, attention, batch norm "
        "and augmentation"
    )
    assert said[0].startswith(f"{compiling} (tuned build")
    assert "the build failed (tuned; compiler output in " in said[1]
    assert "retrying once with the portable build" in said[1]
    assert said[2].startswith(f"{compiling} (portable build")
    assert len(said) == 3
    assert len(list(tmp_path.glob("*-tuned-*.failed"))) == 1
    assert len(list(tmp_path.glob("*-portable-*.so"))) == 1
    # The next process neither repeats the failed build nor says anything.
    assert run() == (["portable", "676.0"], [])


def test_a_failure_is_remembered_until_its_inputs_change(monkeypatch, tmp_path):
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    with pytest.raises(native.NativeBuildError, match="the build failed"):
        native.build_library()
    assert len(list(tmp_path.glob("*.failed"))) == 2  # tuned, then portable
    with pytest.raises(native.NativeBuildError, match=r"failed before .* failed before"):
        native.build_library()  # no new attempt: nothing changed
    changed = tmp_path / "changed.cc"
    changed.write_text(native.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    with pytest.raises(native.NativeBuildError, match="the build failed"):
        native.build_library()  # a new source is worth a new attempt


def test_the_cache_key_follows_the_flags_and_the_compiler_version(monkeypatch, tmp_path):
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path))
    tuned, portable = native.builds("g++")
    assert native.library_path("g++", tuned) != native.library_path("g++", portable)
    assert "-portable-" in native.library_path("g++", portable).name
    before = native.library_path("g++", portable)
    monkeypatch.setattr(native, "_compiler_version", lambda compiler: "g++ (Debian 13.1.0)")
    assert native.library_path("g++", portable) != before


@pytest.mark.parametrize("has_fp16", [True, False])
def test_tuned_flags_leave_out_what_the_headers_cannot_compile(monkeypatch, has_fp16):
    flags = {"avx2", "fma", "avx512f"} | ({"avx512_fp16"} if has_fp16 else set())
    monkeypatch.setattr(native, "cpu_flags", lambda: flags)
    monkeypatch.setattr(native, "_compiler_accepts", lambda compiler, switch: True)
    expected = ["-march=native", "-mprefer-vector-width=512"]  # AVX-512: whole registers
    expected += ["-mno-avx512fp16"] if has_fp16 else []
    assert native.tuned_flags("g++") == tuple(expected)
    assert native.portable_flags() in {("-mavx2", "-mfma"), ()}  # () off x86-64


CHECK_SOURCE = Path(__file__).with_name("native") / "check_kernels.cc"
# Each instruction-set level the kernels have a path for, as the compiler is told it.
ISA_LEVELS = {
    "plain x86-64": (),
    "AVX": ("-mavx",),
    "AVX2 and FMA (the portable build)": ("-mavx2", "-mfma"),
    "AVX-512": ("-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"),
}


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 flags")
@pytest.mark.parametrize(
    ("level", "compiler_name"),
    # g++ at every level; clang++, where installed, at the portable build's.
    [(level, "g++") for level in ISA_LEVELS] + [("AVX2 and FMA (the portable build)", "clang++")],
)
def test_kernels_match_plain_loops_at_every_instruction_set_level(level, compiler_name, tmp_path):
    """The kernels' arithmetic, built without TensorFlow for each ISA level, by
    each compiler present, and run where the CPU can (a level above this CPU's
    is only compiled): every element of the three passes against
    double-precision loops."""
    compiler = shutil.which(compiler_name)
    if compiler is None:
        pytest.skip(f"no {compiler_name} here")
    program = tmp_path / "check_kernels"
    flags = ISA_LEVELS[level]
    build = subprocess.run(
        [
            compiler,
            "-O2",
            "-std=c++17",
            *flags,
            "-ffp-contract=fast",
            "-fopenmp-simd",
            f"-I{native.HEADERS[0].parent}",
            str(CHECK_SOURCE),
            "-o",
            str(program),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    needed = {"-mavx": "avx", "-mavx2": "avx2", "-mavx512f": "avx512f", "-mavx512bw": "avx512bw"}
    missing = {needed[flag] for flag in flags if flag in needed} - cpu_flags()
    if missing:
        pytest.skip(f"compiled; this CPU lacks {', '.join(sorted(missing))} to run it")
    result = subprocess.run([str(program)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout
    assert "bad cases: 0" in result.stdout
