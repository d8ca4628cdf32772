"""Which form of a layer runs: chosen by measuring each candidate where it runs, as cuDNN's benchmark mode does.

A layer with several forms (ops.py: the plain convolution and its faster forms, all giving the
same values to float rounding) asks ``run(op, key, forms, default)``. The mode
(``extract.conv_forms``):
    plain   always the plain form (the reference)
    fused   the form the layer's own rule picks (device and sizes), without measuring
    auto    on first use of a (layer, shape) on this machine, time every candidate on the real
            input (a form over 1.5x the best so far after one timed call is dropped), keep the
            fastest, and remember it per machine (CPU model and ISA, or GPU name;
            torch version; threads) in <cache_dir>/conv_forms/, so later jobs skip the timing.
The choice never changes the features beyond float rounding, so it is not in the cache key.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..resources import cpu_info

log = logging.getLogger(__name__)
MODES = ("auto", "plain", "fused")

_mode = "fused"
_store: Path | None = None
_choices: dict[str, str] = {}
_timings: dict[str, dict[str, float]] = {}      # key -> {form: seconds}, measured in this process


def machine_id() -> str:
    """CPU model and ISA (or GPU name), torch version and threads: what a measured choice holds for."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
    else:
        model = cpu_info().get("model name", "cpu")
        device = f"{model} {torch.backends.cpu.get_cpu_capability()} {torch.get_num_threads()}t"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{device} torch{torch.__version__}")


def configure(mode: str = "fused", cache_dir: str | Path | None = None) -> None:
    """Set the mode; in auto mode, load the choices measured before on this machine (from cache_dir)."""
    global _mode, _store
    if mode not in MODES:
        raise ValueError(f"conv_forms={mode!r}: use one of {list(MODES)}")
    _mode = mode
    _store = Path(cache_dir) / "conv_forms" / f"{machine_id()}.json" if cache_dir else None
    if _store is not None and _store.is_file():
        with contextlib.suppress(ValueError, OSError):
            _choices.update(json.loads(_store.read_text()))


def reset() -> None:
    """Forget the choices and timings of this process (the stored choices stay on disk)."""
    _choices.clear()
    _timings.clear()


def mode() -> str:
    return _mode


@contextlib.contextmanager
def forced(new_mode: str):
    """Within this block every layer runs in new_mode."""
    global _mode
    previous, _mode = _mode, new_mode
    try:
        yield
    finally:
        _mode = previous


_pinned: tuple[str, ...] = ()


@contextlib.contextmanager
def pinned(*names: str):
    """Within this block every layer that has a form of one of these names runs the first it has; the
    others follow the mode (tests)."""
    global _pinned
    previous, _pinned = _pinned, names
    try:
        yield
    finally:
        _pinned = previous


def choices() -> dict[str, str]:
    """Every choice known in this process: key -> form."""
    return dict(_choices)


def timings() -> dict[str, dict[str, float]]:
    """The candidates' seconds behind each choice measured in this process."""
    return {k: dict(v) for k, v in _timings.items()}


def shape_key(op: str, *tensors: torch.Tensor, extra=()) -> str:
    parts = [op, tensors[0].device.type, str(tensors[0].dtype).replace("torch.", "")]
    parts += ["x".join(map(str, t.shape)) for t in tensors] + [str(e) for e in extra]
    return "|".join(parts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], torch.Tensor], device: torch.device, min_seconds: float = 0.02, reps: int = 3,
          give_up_above: float = float("inf")) -> float:
    """Best of at least `reps` timed calls (and `min_seconds`), after a warm-up; a candidate whose first
    timed call takes more than `give_up_above` cannot win and is not timed again."""
    fn()                                             # warm-up: allocator, kernels, caches
    best, spent, n = float("inf"), 0.0, 0
    while n < reps or spent < min_seconds:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
        if n >= 20 or best > give_up_above:
            break
    return best


# A candidate this many times slower than the best so far on its first timed call is dropped: one
# call strays far less than that from its best on an idle machine, and timing the slow forms (the
# plain convolution at the large width) again is most of what measuring costs.
GIVE_UP_FACTOR = 1.5


def _measure(forms: dict[str, Callable[[], torch.Tensor]], default: str, device: torch.device) -> dict[str, float]:
    """Seconds of each candidate, the rule's pick first (so the slow ones are dropped early)."""
    seconds: dict[str, float] = {}
    for name in sorted(forms, key=lambda n: n != default):
        bound = GIVE_UP_FACTOR * min(seconds.values(), default=float("inf"))
        seconds[name] = _time(forms[name], device, give_up_above=bound)
    return seconds


def _remember(key: str, form: str) -> None:
    _choices[key] = form
    if _store is None:
        return
    from ..storage import CacheWriteError, atomic_write_text

    try:                                             # several jobs may share the file: merge, then replace
        known = json.loads(_store.read_text()) if _store.is_file() else {}
    except (ValueError, OSError):
        known = {}
    known[key] = form
    try:
        atomic_write_text(_store, json.dumps(known, indent=1, sort_keys=True))
    except CacheWriteError as exc:                  # the choice still holds for this process
        log.warning("could not store the measured conv form: %s", exc)


def run(op: str, key: str, forms: dict[str, Callable[[], torch.Tensor]], default: str, device: torch.device) -> torch.Tensor:
    """Run the form of `op` that the mode picks; forms always holds 'plain'."""
    for name in _pinned:
        if name in forms:
            return forms[name]()
    if _mode == "plain":
        return forms["plain"]()
    if _mode == "fused" or len(forms) == 1 or device.type == "meta":
        return forms[default]()
    key = f"{key}|forms={','.join(sorted(forms))}"     # a release with a new form measures again
    chosen = _choices.get(key)
    if chosen in forms:
        return forms[chosen]()
    if torch.compiler.is_compiling():               # never time inside a graph being traced
        return forms[default]()
    seconds = _measure(forms, default, device)
    chosen = min(seconds, key=seconds.get)
    _timings[key] = seconds
    log.info("conv form for %s: %s (%s)", key, chosen, ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in seconds.items()))
    _remember(key, chosen)
    return forms[chosen]()
