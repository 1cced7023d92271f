"""What CPU this is, in the words benchmarks and run folders record.

Timings from different machines are only comparable with the CPU named:
the sessions of this project have run on AMD EPYC and Intel Xeon (Sapphire
Rapids) machines. Read from /proc/cpuinfo, so no TensorFlow is needed.
"""

from __future__ import annotations

import functools
import os
import platform

# The vector extensions that matter to this project's kernels, in the order
# they appeared, as /proc/cpuinfo spells them.
VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",  # aarch64's NEON
    "sve",
)


@functools.lru_cache(maxsize=1)
def cpu_fields() -> dict[str, str]:
    """The first processor's entries of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags() -> set[str]:
    fields = cpu_fields()
    return set((fields.get("flags") or fields.get("Features") or "").split())


def cpu_model() -> str:
    fields = cpu_fields()
    return fields.get("model name") or platform.processor() or platform.machine() or "unknown"


def vector_isa() -> str:
    """The vector extensions this CPU has, e.g. "avx2 fma avx512f ... amx_bf16"."""
    flags = cpu_flags()
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    return " ".join(present) or "none known"


def cpu_description() -> dict[str, str | int | None]:
    """CPU model, core count and vector ISA, for summary.json and benchmark output."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "vector_isa": vector_isa()}
