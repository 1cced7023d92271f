"""The native kernel: built where a compiler exists, cached, and a clean fallback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from involution_bench import native


def test_builds_and_loads_wherever_a_compiler_exists():
    if native.find_compiler() is None or os.environ.get(native.NATIVE_ENV) == "0":
        pytest.skip("no C++ compiler here, or the native kernel is turned off")
    assert native.native_ops() is not None
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
        "from involution_bench.layers import involution\n"
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
        "invbench: native involution kernel unavailable: disabled by INVBENCH_NATIVE=0; "
        "using pure TensorFlow"
    ]
    # Along each axis the 5 positions see 2+3+3+3+2 = 13 taps: 13 * 13 * 4 channels.
    assert result.stdout.split() == ["676.0", "676.0"]
