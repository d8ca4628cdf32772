import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)


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
