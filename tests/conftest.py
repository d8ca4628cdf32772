import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


def _one_core_per_worker() -> int:
    """Under pytest-xdist (make test: one worker per core) each worker, and every job and subprocess it starts,
    runs on a core of its own, as a job under a parallel launcher does: no worker's threads crowd another's."""
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not worker.startswith("gw") or len(cores) < 2:
        return len(cores) or 2
    os.sched_setaffinity(0, {cores[int(worker[2:]) % len(cores)]})
    return 1


torch.set_num_threads(_one_core_per_worker())


@pytest.fixture(scope="session")
def frontend_configs():
    """name -> front-end config as the package ships it (over its schema)."""
    from elmarc.describe import frontend_configs

    return frontend_configs()


@pytest.fixture(scope="session")
def example_inputs():
    """One deterministic batch of each model input kind: log-mel (2, 1376, 96) around -40 dB,
    waveform (2, 350000), whole-clip audio (2 clips of 3 and 4.2 s) for MFCC."""
    rng = np.random.default_rng(2024)
    logmel = torch.from_numpy(rng.normal(-40, 12, (2, 1376, 96)).astype(np.float32))
    wave = torch.from_numpy((0.1 * rng.standard_normal((2, 350000))).astype(np.float32))
    audio = [torch.from_numpy((0.1 * rng.standard_normal(n)).astype(np.float32)) for n in (36000, 50000)]
    return {"logmel": logmel, "waveform": wave, "audio": audio}


@pytest.fixture(scope="session", autouse=True)
def one_native_build(tmp_path_factory):
    """The native kernel is built once for the session (ELMARC_NATIVE_DIR), not once per test's fresh cache;
    the tests of where it is built set their own folder or leave the variable out."""
    import os

    folder = tmp_path_factory.mktemp("native")
    before = os.environ.get("ELMARC_NATIVE_DIR")
    os.environ["ELMARC_NATIVE_DIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("ELMARC_NATIVE_DIR", None)
    else:
        os.environ["ELMARC_NATIVE_DIR"] = before
