"""The wheel is a complete package: every config and data file inside, and the app composes from it alone."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "elmarc"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from a copy of the sources (so the build writes nothing into the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "elmarc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "hydra_plugins", src / "hydra_plugins", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True)
    (whl,) = out.glob("elmarc-*.whl")
    return whl


@pytest.mark.slow
def test_wheel_holds_every_config_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*")
               if p.is_file() and p.suffix in (".yaml", ".txt", ".json", ".csv", ".cpp")}
    assert {"elmarc/conf/config.yaml", "elmarc/conf/frontend/vgg.yaml", "elmarc/data/gtzan/test_filtered.txt",
            "elmarc/data/urbansound8k/UrbanSound8K.csv", "elmarc/frontends/speed/kernels/patch_max.cpp"} <= shipped
    assert shipped <= names, sorted(shipped - names)
    # the search sweeper: Hydra finds sweepers only in the hydra_plugins package
    assert {"hydra_plugins/elmarc_search/search_sweeper.py", "elmarc/conf/hydra/sweeper/search.yaml",
            "elmarc/conf/space/audio.yaml"} <= names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)


@pytest.mark.slow
def test_app_composes_from_the_installed_files_alone(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    code = "import elmarc, sys; print(elmarc.__file__); from elmarc.main import main; main()"
    out = subprocess.run([sys.executable, "-c", code, "--cfg", "job", "dataset=esc10", "frontend=vgg",
                          "classifier=svm_wide", "features=large"],
                         cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    first, rest = out.stdout.split("\n", 1)
    assert Path(first).resolve().is_relative_to(site.resolve())          # not the checkout
    assert "_target_: elmarc.datasets.esc.build_esc10" in rest and "name: svm_wide" in rest
    assert "width: large" in rest and "name: vgg" in rest
