"""Timing a layer's candidate forms where they run, and telling a measurement a busy machine spoilt.

Candidates are timed in interleaved rounds on the real input (the rule's pick first; a form over 1.5x the
best after two rounds is dropped). A measurement during which the machine's speed changed (a calibration
product timed before and after differs by over 25%), or made while the machine is busy (the calibration
1.5x slower than the fastest seen on this machine), is reported as disturbed: the policy measures once more,
then runs the rule and stores nothing.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

BASELINE = "calibration seconds"          # the store's entry for the fastest calibration seen on this machine
# A candidate this many times slower than the best after two rounds is dropped: its best of two calls strays
# far less than that on an idle machine, and timing the slow forms again is most of the cost.
GIVE_UP_FACTOR = 1.5
ROUNDS = 3                  # interleaved: a load that comes and goes falls on every candidate alike
DISTURBED = 1.25            # the calibration before and after measuring differ by more: the load changed
LOADED = 1.5                # the calibration is this much slower than the fastest seen here: the machine is busy

clock = time.perf_counter   # tests replace it with a simulated clock


class Calibration:
    """The fastest calibration seen (by this policy, or stored by earlier jobs on this machine)."""

    def __init__(self):
        self.fastest: float | None = None

    def note(self, value) -> None:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return
        if seconds > 0 and (self.fastest is None or seconds < self.fastest):
            self.fastest = seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    """Seconds of one call of fn."""
    _sync(device)
    t0 = clock()
    fn()
    _sync(device)
    return clock() - t0


def calibration(device: torch.device) -> float:
    """The machine's speed at this moment: the median of three runs of fixed products (~20 ms each, longer than
    a scheduler's time slice, so another process on the cores shows, as it does in the candidates' times)."""
    a = torch.ones(1024, 1024, device=device)
    runs = sorted(seconds_of(lambda: [torch.mm(a, a) for _ in range(4)], device) for _ in range(3))
    return runs[1]


def candidates(forms: dict[str, Callable[[], torch.Tensor]], rule: str, device: torch.device,
               seen: Calibration) -> tuple[dict[str, float], bool]:
    """(best seconds of each candidate over interleaved rounds, the rule's pick first; whether the machine's
    speed changed during the measurement, or it was busy throughout)."""
    before = calibration(device)
    order = sorted(forms, key=lambda n: n != rule)
    for name in order:
        forms[name]()                                # warm-up: allocator, kernels, caches
    seconds = dict.fromkeys(order, float("inf"))
    alive = list(order)
    for r in range(ROUNDS):
        for name in alive[r % len(alive):] + alive[:r % len(alive)]:
            seconds[name] = min(seconds[name], seconds_of(forms[name], device))
        if r == 1:                                   # two calls each: one disturbed call drops no candidate
            best = min(seconds.values())
            alive = [n for n in alive if seconds[n] <= GIVE_UP_FACTOR * best]
    after = calibration(device)
    loaded = seen.fastest is not None and min(before, after) > LOADED * seen.fastest
    seen.note(min(before, after))
    return seconds, max(after / before, before / after) > DISTURBED or loaded
