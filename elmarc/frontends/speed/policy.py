"""Which form of a layer runs: the one door into the speed wing.

A layer with several forms (ops.py: the plain convolution and its faster forms, all giving the same
values to float rounding, not to the bit) asks the active policy ``run(op, key, candidates, rule)``.
The policy's mode (``extract.conv_forms``):
    rule    the form the layer's own rule picks from the device, the ISA and the sizes (the default):
            the same bytes for the same command on one machine, whatever its load
    plain   always the plain form (the reference)
    auto    on first use of a layer shape on this machine, time the candidates (measure.py), keep the
            fastest and remember it per machine in <cache_dir>/conv_forms/ (store.py)
Because the forms round differently, the extract stage puts the mode in the feature key and, for auto,
the plan of every layer's chosen form (``recording``), under which it then extracts (``frozen``).

A policy is an object a job builds from its settings and makes active for a block (``with policy.active():``);
models and ops never see a setting, only ``current()``. Outside any block the rule runs, with native
kernels built in the user's own cache folder.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from . import measure
from .native import NativeKernels
from .store import FormStore

log = logging.getLogger(__name__)
MODES = ("rule", "plain", "auto")


def shape_key(op: str, *tensors: torch.Tensor, extra=()) -> str:
    """What a layer's choice holds for: op, device, dtype and shapes (the first tensor's batch size left out:
    a layer's form holds for every batch, the last partial one too)."""
    parts = [op, tensors[0].device.type, str(tensors[0].dtype).replace("torch.", "")]
    shapes = [tensors[0].shape[1:], *(t.shape for t in tensors[1:])]
    parts += ["x".join(map(str, shape)) for shape in shapes] + [str(e) for e in extra]
    return "|".join(parts)


class SpeedPolicy:
    """How one job's layers run: the forms mode, the native kernels, and (auto) the measured choices.

    mode: rule, plain or auto. native: whether forms may use C++ kernels compiled here. cache_dir: where
    the native kernels are built (<cache_dir>/native) and auto's choices are stored (<cache_dir>/conv_forms).
    """

    def __init__(self, mode: str = "rule", native: bool = True, cache_dir: str | Path | None = None):
        if mode not in MODES:
            raise ValueError(f"conv_forms={mode!r}: use one of {list(MODES)}")
        self.mode = mode
        self.native = NativeKernels(native, Path(cache_dir) / "native" if cache_dir else None)
        self.store = FormStore(Path(cache_dir) / "conv_forms") if cache_dir else None
        self.choices: dict[str, str] = {}                    # key -> form, measured or read from the store
        self.timings: dict[str, dict[str, float]] = {}       # key -> {form: seconds} measured by this policy
        self.calibration = measure.Calibration()
        self.plan: dict[str, str] | None = None              # frozen: key -> form, every other key runs its rule
        self.recorded: dict[str, str] | None = None          # key -> form of every layer run while recording
        self.pinned: tuple[str, ...] = ()                    # forms run wherever a layer has them (tests)
        if mode == "auto" and self.store is not None:
            self.load_store()

    def __repr__(self) -> str:
        return f"SpeedPolicy(mode={self.mode!r}, native={self.native.enabled}, store={self.store})"

    def load_store(self) -> None:
        """The choices stored on this machine (by earlier jobs, or while this one waited for the lock)."""
        known = self.store.read()
        self.calibration.note(known.pop(measure.BASELINE, None))
        self.choices.update(known)

    # -- blocks ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def active(self):
        """Within this block the layers run as this policy says."""
        token = _active.set(self)
        try:
            yield self
        finally:
            _active.reset(token)

    def _derived(self, **changes) -> SpeedPolicy:
        """The same policy (its kernels, store and choices shared) with some fields changed."""
        other = copy.copy(self)
        for name, value in changes.items():
            setattr(other, name, value)
        return other

    def using(self, mode: str):
        """A block in which every layer runs in mode (training runs the plain forms, say)."""
        return self._derived(mode=mode).active()

    def frozen(self, plan: dict[str, str]):
        """A block in which a layer runs the form the plan names for it (the rule's where the plan has none):
        nothing is measured, so what runs is what the plan, part of the feature key, says."""
        return self._derived(plan=dict(plan)).active()

    def with_pinned(self, *names: str):
        """A block in which a layer that has a form of one of these names runs the first it has (tests)."""
        return self._derived(pinned=names).active()

    @contextlib.contextmanager
    def recording(self):
        """A block in which every layer's key and the form it ran are collected into the dict yielded."""
        used: dict[str, str] = {}
        with self._derived(recorded=used).active():
            yield used

    def measuring_lock(self):
        """This machine's store, locked (a no-op without a store): one process measures at a time."""
        return self.store.lock() if self.store is not None else contextlib.nullcontext()

    # -- the choice ----------------------------------------------------------------------------
    def run(self, op: str, key: str, candidates: dict[str, Callable[[], torch.Tensor]], rule: str,
            device: torch.device) -> torch.Tensor:
        """Run the form of `op` the policy picks; candidates always holds 'plain', and rule names the rule's form."""
        name = self.pick(key, candidates, rule, device)
        if self.recorded is not None:
            self.recorded[key] = name
        return candidates[name]()

    def pick(self, key: str, candidates: dict[str, Callable[[], torch.Tensor]], rule: str, device: torch.device) -> str:
        pinned = next((n for n in self.pinned if n in candidates), None)
        if pinned is not None:
            return pinned
        if self.plan is not None:
            chosen = self.plan.get(key)
            return chosen if chosen in candidates else rule
        if self.mode == "plain":
            return "plain"
        if self.mode == "rule" or len(candidates) == 1 or device.type == "meta":
            return rule
        key = f"{key}|forms={','.join(sorted(candidates))}"     # a release with a new form measures again
        chosen = self.choices.get(key)
        if chosen in candidates:
            return chosen
        if torch.compiler.is_compiling():               # never time inside a graph being traced
            return rule
        for _attempt in (1, 2):
            seconds, disturbed = measure.candidates(candidates, rule, device, self.calibration)
            if not disturbed:
                break
        self.timings[key] = seconds
        if disturbed:
            log.warning("conv form for %s: the machine's speed changed while measuring, twice; running the rule's %s, "
                        "storing nothing", key, rule)
            return rule
        chosen = min(seconds, key=seconds.get)
        log.info("conv form for %s: %s (%s)", key, chosen, ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in seconds.items()))
        self.choices[key] = chosen
        if self.store is not None:
            self.store.remember(key, chosen, self.calibration)
        return chosen


_default = SpeedPolicy()          # outside any block: each layer's rule, kernels in the user's own folder
_active: contextvars.ContextVar[SpeedPolicy] = contextvars.ContextVar("elmarc_speed_policy", default=_default)


def current() -> SpeedPolicy:
    """The policy of the block being run (the rule's outside any)."""
    return _active.get()
