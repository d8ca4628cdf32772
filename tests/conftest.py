import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def frontend_configs():
    from omegaconf import OmegaConf

    return {p.stem: OmegaConf.load(p) for p in sorted((ROOT / "conf" / "frontend").glob("*.yaml"))}
