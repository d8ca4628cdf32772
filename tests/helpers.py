"""Running elmarc from the tests: in-process through Hydra's compose API (most tests), or as the CLI (a few)."""
import logging
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Jobs run each layer's own rule (fused): measuring every form (the default, auto) is a once-per-machine
# cost that tests of other stages would pay per shape; the tests that run auto name it.
TINY = ["dataset=synthetic", "dataset.n_per_class=6", "dataset.n_folds=3", "dataset.duration=3.0",
        "extract.progress=false", "extract.num_workers=0", "extract.conv_forms=rule"]


def compose_cfg(overrides, cache=None, config_dir=None):
    """The job config as `elmarc <overrides>` would compose it (cache_dir set when given)."""
    from elmarc.config import compose

    extra = [f"cache_dir={cache}"] if cache is not None else []
    return compose([*overrides, *extra], config_dir)


def run_job(overrides, out_dir, cache, single_run=True):
    """One job in this process, as a single run of the CLI writes it (report included), or as a job of a sweep."""
    from elmarc.pipeline import run_job as run

    return run(compose_cfg(overrides, cache), Path(out_dir), overrides, single_run=single_run)


def run_sweep(jobs, sweep_dir, cache, report=True):
    """Each override list as job <i> of a sweep folder, then the sweep's report (what -m writes).

    Like Hydra's multirun, a failing job (its status.json says why) does not stop the others;
    returns the sweep folder, or (folder, failures) when some failed."""
    from elmarc.report import write_report

    failures = []
    for i, overrides in enumerate(jobs):
        try:
            run_job(overrides, Path(sweep_dir) / str(i), cache, single_run=False)
        except Exception as exc:
            failures.append((i, exc))
    if report:
        write_report(sweep_dir, print_summary=False)
    return (Path(sweep_dir), failures) if failures else Path(sweep_dir)


def grid(**axes):
    """Every combination of the axes as override lists, like a -m sweep: grid(frontend=["a", "b"], seed=[0, 1])."""
    import itertools

    keys = list(axes)
    return [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*(axes[k] for k in keys))]


def run_cli(args, cache, cwd=None, check=True, module="elmarc.main", timeout=600, env=None):
    env = {**os.environ, "ELMARC_CACHE": str(cache), "HYDRA_FULL_ERROR": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-4000:]}")
    return proc


def log_text(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


logging.getLogger("elmarc").setLevel(logging.INFO)
