"""Which form of a layer runs: each layer's own rule by default, or a measured choice when asked for.

A layer with several forms (ops.py: the plain convolution and its faster forms, all giving the
same values to float rounding, not to the bit) asks ``run(op, key, forms, default)``. The mode
(``extract.conv_forms``):
    fused   the form the layer's own rule picks from the device, the ISA and the sizes (the default):
            the same bytes for the same command on one machine, whatever its load
    plain   always the plain form (the reference)
    auto    on first use of a layer shape on this machine, time the candidates in interleaved rounds
            on the real input (a form over 1.5x the best after two rounds is dropped), keep the fastest,
            and remember it per machine (CPU model and ISA, or GPU name; torch version; threads) in
            <cache_dir>/conv_forms/. A measurement during which the machine's speed changed (a
            calibration product timed before and after differs by over 25%), or made while the machine
            is busy (the calibration 1.5x slower than the fastest seen on this machine), is taken
            again, and if disturbed again, the rule runs and nothing is stored.
Because the forms round differently, the extract stage puts the mode in the feature key and, for
auto, the plan of every layer's chosen form (``plan``), under which it then extracts (``frozen``).
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
_plan: dict[str, str] | None = None             # frozen: key -> form, every other key runs its rule
_recording: dict[str, str] | None = None        # key -> form of every layer run while recording
_clock = time.perf_counter


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
    if mode == "auto" and _store is not None and _store.is_file():
        known = _read_store(_store)
        _note_baseline(known.pop(BASELINE, None))
        _choices.update(known)


def _read_store(path: Path) -> dict[str, str]:
    """The stored choices, or {} for a file that is not a JSON object of form names (named, set aside)."""
    try:
        known = json.loads(path.read_text())
        if not isinstance(known, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in known.items()):
            raise ValueError("not an object of layer shape -> form name")
        return known
    except (ValueError, OSError) as exc:
        from ..storage import move_aside

        with contextlib.suppress(OSError):
            aside = move_aside([path], path.parent)
            log.warning("conv-forms file %s is unusable (%s); moved to %s, the forms are measured again", path, exc, aside)
        return {}


def reset() -> None:
    """Forget the choices, timings and calibration of this process (the stored choices stay on disk)."""
    global _baseline
    _baseline = None
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


def measuring_lock():
    """This machine's store, locked (a no-op without a store): one process measures at a time."""
    if _store is None:
        return contextlib.nullcontext()
    from ..storage import file_lock

    return file_lock(_store.with_suffix(".lock"))


@contextlib.contextmanager
def frozen(plan: dict[str, str]):
    """Within this block a layer runs the form the plan names for it (the rule's where the plan has none):
    nothing is measured, so what runs is what the plan, part of the feature key, says."""
    global _plan
    previous, _plan = _plan, dict(plan)
    try:
        yield
    finally:
        _plan = previous


@contextlib.contextmanager
def recording():
    """Within this block, every layer's key and the form it ran are collected into the dict yielded."""
    global _recording
    previous, _recording = _recording, {}
    try:
        yield _recording
    finally:
        _recording = previous


def choices() -> dict[str, str]:
    """Every choice known in this process: key -> form."""
    return dict(_choices)


def timings() -> dict[str, dict[str, float]]:
    """The candidates' seconds behind each choice measured in this process."""
    return {k: dict(v) for k, v in _timings.items()}


def shape_key(op: str, *tensors: torch.Tensor, extra=()) -> str:
    parts = [op, tensors[0].device.type, str(tensors[0].dtype).replace("torch.", "")]
    # the first tensor's batch size left out: a layer's form holds for every batch, the last partial one too
    shapes = [tensors[0].shape[1:], *(t.shape for t in tensors[1:])]
    parts += ["x".join(map(str, shape)) for shape in shapes] + [str(e) for e in extra]
    return "|".join(parts)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Seconds of one call of fn."""
    _sync(device)
    t0 = _clock()
    fn()
    _sync(device)
    return _clock() - t0


def _calibration(device: torch.device) -> float:
    """The machine's speed at this moment: the median of three runs of fixed products (~20 ms each, longer than
    a scheduler's time slice, so another process on the cores shows, as it does in the candidates' times)."""
    a = torch.ones(1024, 1024, device=device)
    runs = sorted(_time(lambda: [torch.mm(a, a) for _ in range(4)], device) for _ in range(3))
    return runs[1]


BASELINE = "calibration seconds"          # the store's entry for the fastest calibration seen on this machine
_baseline: float | None = None


def _note_baseline(value) -> None:
    """Keep the fastest calibration seen (this process, or the store's)."""
    global _baseline
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return
    if seconds > 0 and (_baseline is None or seconds < _baseline):
        _baseline = seconds


# A candidate this many times slower than the best after two rounds is dropped: its best of two calls strays
# far less than that on an idle machine, and timing the slow forms again is most of the cost.
GIVE_UP_FACTOR = 1.5
ROUNDS = 3                  # interleaved: a load that comes and goes falls on every candidate alike
DISTURBED = 1.25            # the calibration before and after measuring differ by more: the load changed
LOADED = 1.5                # the calibration is this much slower than the fastest seen here: the machine is busy


def _measure(forms: dict[str, Callable[[], torch.Tensor]], default: str, device: torch.device) -> tuple[dict[str, float], bool]:
    """(best seconds of each candidate over interleaved rounds, the rule's pick first; whether the machine's
    speed changed during the measurement)."""
    before = _calibration(device)
    order = sorted(forms, key=lambda n: n != default)
    for name in order:
        forms[name]()                                # warm-up: allocator, kernels, caches
    seconds = dict.fromkeys(order, float("inf"))
    alive = list(order)
    for r in range(ROUNDS):
        for name in alive[r % len(alive):] + alive[:r % len(alive)]:
            seconds[name] = min(seconds[name], _time(forms[name], device))
        if r == 1:                                   # two calls each: one disturbed call drops no candidate
            best = min(seconds.values())
            alive = [n for n in alive if seconds[n] <= GIVE_UP_FACTOR * best]
    after = _calibration(device)
    loaded = _baseline is not None and min(before, after) > LOADED * _baseline
    _note_baseline(min(before, after))
    return seconds, max(after / before, before / after) > DISTURBED or loaded


def _remember(key: str, form: str) -> None:
    _choices[key] = form
    if _store is None:
        return
    from ..storage import CacheWriteError, atomic_write_text

    known = _read_store(_store) if _store.is_file() else {}     # several jobs may share the file: merge, then replace
    _note_baseline(known.get(BASELINE))
    known[key] = form
    known[BASELINE] = repr(_baseline)
    try:
        atomic_write_text(_store, json.dumps(known, indent=1, sort_keys=True))
    except CacheWriteError as exc:                  # the choice still holds for this process
        log.warning("could not store the measured conv form: %s", exc)


def run(op: str, key: str, forms: dict[str, Callable[[], torch.Tensor]], default: str, device: torch.device) -> torch.Tensor:
    """Run the form of `op` that the mode picks; forms always holds 'plain'."""
    name = _pick(key, forms, default, device)
    if _recording is not None:
        _recording[key] = name
    return forms[name]()


def _pick(key: str, forms: dict[str, Callable[[], torch.Tensor]], default: str, device: torch.device) -> str:
    pinned_form = next((n for n in _pinned if n in forms), None)
    if pinned_form is not None:
        return pinned_form
    if _plan is not None:
        chosen = _plan.get(key)
        return chosen if chosen in forms else default
    if _mode == "plain":
        return "plain"
    if _mode == "fused" or len(forms) == 1 or device.type == "meta":
        return default
    key = f"{key}|forms={','.join(sorted(forms))}"     # a release with a new form measures again
    chosen = _choices.get(key)
    if chosen in forms:
        return chosen
    if torch.compiler.is_compiling():               # never time inside a graph being traced
        return default
    for _attempt in (1, 2):
        seconds, disturbed = _measure(forms, default, device)
        if not disturbed:
            break
    _timings[key] = seconds
    if disturbed:
        log.warning("conv form for %s: the machine's speed changed while measuring, twice; running the rule's %s, "
                    "storing nothing", key, default)
        return default
    chosen = min(seconds, key=seconds.get)
    log.info("conv form for %s: %s (%s)", key, chosen, ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in seconds.items()))
    _remember(key, chosen)
    return chosen
