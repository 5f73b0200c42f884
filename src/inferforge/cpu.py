"""What this machine can do: CPU model, ISA flags, cores and library versions. Detected, never assumed."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import metadata

ISA_FLAGS = ("avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
             "amx_int8")
LIBRARIES = ("torch", "transformers", "tokenizers", "onnx", "onnxruntime", "openvino", "nncf", "nvidia-pytriton", "numpy")


@dataclass(frozen=True)
class MachineInfo:
    cpu_model: str
    cores: int
    isa: dict[str, bool]
    python: str
    libraries: dict[str, str] = field(default_factory=dict)

    @property
    def has_amx(self) -> bool:
        return self.isa.get("amx_bf16", False)

    @property
    def has_bf16(self) -> bool:
        return self.isa.get("avx512_bf16", False) or self.has_amx

    @property
    def has_vnni(self) -> bool:
        return self.isa.get("avx512_vnni", False) or self.isa.get("amx_int8", False)

    def to_dict(self) -> dict:
        return asdict(self)


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("unknown", "", platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=1)
def machine_info() -> MachineInfo:
    model, flags = _cpuinfo()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return MachineInfo(
        cpu_model=model,
        cores=cores,
        isa={flag: flag in flags for flag in ISA_FLAGS},
        python=platform.python_version(),
        libraries={name: _version(name) for name in LIBRARIES},
    )


def default_threads() -> int:
    return machine_info().cores
