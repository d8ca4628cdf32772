"""How many cores one job may use: its CPU affinity, shared with the jobs a parallel launcher runs beside it."""
from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from threadpoolctl import threadpool_limits


@functools.cache
def cpu_info() -> dict[str, str]:
    """The first CPU's fields of /proc/cpuinfo ("model name", "flags", ...); {} where there is none."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                info.setdefault(key.strip(), value.strip())
    return info


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def job_cores() -> int:
    """Cores for this job: a submitit job's cpus_per_task, a joblib launcher's share, else every available core."""
    cores = available_cores()
    try:

        launcher = HydraConfig.get().launcher
    except ValueError:              # not inside a Hydra app
        return cores
    if launcher.get("cpus_per_task"):
        return max(1, min(cores, int(launcher.cpus_per_task)))
    if launcher.get("n_jobs"):      # joblib: n_jobs processes share the machine (-1: one per core)
        n = int(launcher.n_jobs)
        parallel = cores if n < 0 else n
        return max(1, available_cores_of_machine() // max(1, parallel))
    return cores


def available_cores_of_machine() -> int:
    return os.cpu_count() or 1


def torch_threads(n: int) -> None:
    """torch's CPU threads for this job (a parallel launcher's jobs share the cores, no more)."""
    if n != torch.get_num_threads():
        torch.set_num_threads(n)


@contextlib.contextmanager
def blas_threads(n: int):
    """At most n threads in every BLAS/OpenMP pool while the block runs (threadpoolctl)."""
    with threadpool_limits(limits=max(1, int(n))):
        yield


def available_memory(gpu: bool) -> int | None:
    """Bytes a job can still take: the GPU's total memory, or the machine's MemAvailable (Linux); None where unknown."""
    if gpu:

        return int(torch.cuda.get_device_properties(0).total_memory)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None
