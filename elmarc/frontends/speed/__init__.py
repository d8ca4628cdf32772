"""The speed wing: faster forms of the front-ends' layers, and the one policy that says which form runs.

    ops.py      the layers the models call (each with its plain form and faster forms)
    policy.py   SpeedPolicy, the one door: a job builds it from its settings and makes it active for a block
    measure.py  timing candidate forms, and telling a measurement a busy machine spoilt (auto mode)
    store.py    measured choices remembered per machine
    native.py   C++ kernels compiled where they run (kernels/)

Models reach this wing only through ops; stages only through SpeedPolicy.
"""
from .policy import SpeedPolicy, current

__all__ = ["SpeedPolicy", "current"]
