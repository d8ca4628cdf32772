import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["dataset=synthetic", "dataset.n_per_class=6", "dataset.n_folds=3", "dataset.duration=3.0",
        "extract.progress=false", "extract.num_workers=0"]


def run_cli(args, cache, cwd=None, check=True, module="elmarc.main", timeout=600):
    env = {**os.environ, "ELMARC_CACHE": str(cache), "HYDRA_FULL_ERROR": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}")
    return proc
