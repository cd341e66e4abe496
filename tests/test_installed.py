"""gru-sim installed from its wheel, away from the source checkout, finds the profiles and job specs
it ships and writes new profiles to the user's data folder.

The wheel is built from a copy of the sources and installed without dependencies into a fresh
virtualenv; this test environment's site-packages is put on PYTHONPATH for numpy, torch and the rest.
The editable install's ``.pth`` is not processed from PYTHONPATH, so the wheel's copy of gru_sim is
the one imported (checked). Every command runs from a temporary folder, not the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHAPE = ["--batch", "8", "--seq-len", "50", "--input-size", "64", "--hidden-size", "128"]


@dataclass(frozen=True)
class Installed:
    """A fresh virtualenv holding the gru-sim wheel, and the environment to run it in."""

    python: Path
    exe: Path
    site_packages: Path
    work: Path
    data_home: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.exe), *args], cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("installed")
    # Build from a copy: the shared checkout gets no build/ folder, and no stale file from an
    # earlier build can slip into the wheel.
    src = base / "src"
    shutil.copytree(ROOT / "gru_sim", src / "gru_sim",
                    ignore=shutil.ignore_patterns("__pycache__", "*.sqlite", "*.sqlite-journal", "*.tmp"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(dist), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("gru_sim-*.whl")

    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    site_packages = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        check=True, capture_output=True, text=True).stdout.strip())

    work = base / "work"
    work.mkdir()
    data_home = base / "xdg"
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(ours), "XDG_DATA_HOME": str(data_home)}
    return Installed(python, env_dir / "bin" / "gru-sim", site_packages, work, data_home, env)


@pytest.mark.slow
def test_the_wheel_is_what_gets_imported(installed: Installed) -> None:
    proc = subprocess.run([str(installed.python), "-c", "import gru_sim; print(gru_sim.__file__)"],
                          cwd=installed.work, env=installed.env, capture_output=True, text=True, check=True)
    assert Path(proc.stdout.strip()).is_relative_to(installed.site_packages)


@pytest.mark.slow
def test_installed_predict_uses_the_shipped_profile(installed: Installed) -> None:
    proc = installed.run("predict", *SHAPE, "--json")
    assert proc.returncode == 0, proc.stderr
    # One of the shipped profiles (one per machine kind; which one depends on the machine the tests run on).
    shipped = installed.site_packages / "gru_sim" / "data" / "profiles"
    assert f"using profile {shipped}{os.sep}cpu-" in proc.stderr
    assert '"latency_s"' in proc.stdout


@pytest.mark.slow
def test_installed_calibrate_finds_the_shipped_job_specs(installed: Installed) -> None:
    code = ("from gru_sim.calibrate.jobs import default_job_path, load_job\n"
            "print(default_job_path('cpu'), load_job(default_job_path('cpu')).name)\n")
    proc = subprocess.run([str(installed.python), "-c", code], cwd=installed.work, env=installed.env,
                          capture_output=True, text=True, check=True)
    path, name = proc.stdout.split()
    assert Path(path) == installed.site_packages / "gru_sim" / "data" / "jobs" / "cpu-default.yaml"
    assert name == "cpu-default"


@pytest.mark.slow
def test_installed_validate_finds_the_application_shapes(installed: Installed) -> None:
    code = ("from gru_sim.model.profile import load_profile\n"
            "from gru_sim.validate import APPLICATION_SHAPES, application_configs\n"
            "import gru_sim.locations as l\n"
            "p = load_profile(l.PACKAGE_PROFILES_DIR / 'cpu-default.json')\n"
            "print(APPLICATION_SHAPES, len(application_configs(p)))\n")
    proc = subprocess.run([str(installed.python), "-c", code], cwd=installed.work, env=installed.env,
                          capture_output=True, text=True, check=True)
    path, count = proc.stdout.split()
    assert Path(path) == installed.site_packages / "gru_sim" / "data" / "shapes" / "typical_shapes.csv"
    assert int(count) >= 40  # 20 shapes at each of the shipped profile's thread counts


@pytest.mark.slow
def test_installed_help_lists_the_data_folder_and_the_shipped_profiles(installed: Installed) -> None:
    proc = installed.run("calibrate", "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    user = installed.data_home / "gru-sim" / "profiles"
    assert f"{user}  (your data folder; new ones are written here)" in text
    assert str(installed.site_packages / "gru_sim" / "data" / "profiles") in text
    assert str(installed.site_packages / "gru_sim" / "data" / "jobs") in text
    assert str(ROOT) not in text


@pytest.mark.slow
def test_installed_run_forecasts_an_example_scenario(installed: Installed) -> None:
    shutil.copy2(ROOT / "scenarios" / "quickstart.yaml", installed.work / "quickstart.yaml")
    proc = installed.run("run", "quickstart.yaml", "--out", "out")
    assert proc.returncode == 0, proc.stderr
    assert (installed.work / "out" / "results.json").is_file()
    assert (installed.work / "out" / "report.html").is_file()


@pytest.mark.slow
def test_installed_quick_calibration_adapts_a_tiny_profile(installed: Installed) -> None:
    shutil.copy2(ROOT / "tests" / "data" / "tiny-job.yaml", installed.work / "tiny-job.yaml")
    tiny = installed.work / "tiny.json"
    proc = installed.run("calibrate", "--job", "tiny-job.yaml", "--out", str(tiny), timeout=300)
    assert proc.returncode == 0, proc.stderr
    quick = installed.work / "q.json"
    proc = installed.run("calibrate", "--quick", "--from", str(tiny), "--out", str(quick), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert quick.is_file()
    assert f"profile written to {quick}" in proc.stdout
