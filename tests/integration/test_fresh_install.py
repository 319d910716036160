"""A plain ``pip install .`` (no extras) in a fresh virtual environment gives a working ``courseinfra``:
what the runtime imports is a runtime dependency, and the development tools stay out of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import EXAMPLES, REPO

#: What a build reads from the checkout; copied so that the build writes nothing into it.
#: Real processes at length: the full tier (`make test`), not `make check`.
pytestmark = pytest.mark.slow


BUILD_INPUTS = ("pyproject.toml", "README.md", "src")


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{args}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a new virtual environment with the project installed from a copy of the
    checkout, without extras."""
    root = tmp_path_factory.mktemp("fresh-install")
    source = root / "source"
    source.mkdir()
    for name in BUILD_INPUTS:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        else:
            shutil.copy2(origin, source / name)
    run(sys.executable, "-m", "venv", root / "venv")
    bin_dir = root / "venv" / "bin"
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", source)
    return bin_dir


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURSEINFRA_", "VIRTUAL_ENV", "PYTHON"))}
    return {**env, "COURSEINFRA_HOME": str(home)}


def test_the_installed_command_runs_the_main_job(installed: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    published = json.loads(
        run(installed / "courseinfra", "content", "publish", EXAMPLES / "democourse.json", env=env)
    )
    assert published["cache"]["ancestors"] > 0
    cache = json.loads(run(installed / "courseinfra", "cache", "show", "democourse", env=env))
    assert cache["courseunit1:leafnodes"] == ["resource1", "resource2"]


def test_every_entry_point_imports_with_the_runtime_dependencies_alone(installed: Path) -> None:
    # The API (with the Open edX client, the Prometheus collector) and the workers import at start.
    script = (
        "import courseinfra.entrypoints.api as api, courseinfra.entrypoints.workers, "
        "courseinfra.adapters.legacy.openedx, courseinfra.bootstrap; print(api.create_app.__name__)"
    )
    assert run(installed / "python", "-c", script).strip() == "create_app"
    usage = run(installed / "courseinfra", "--help")
    assert "groups" in usage
    assert "sync" in usage


def test_the_development_tools_are_not_installed(installed: Path) -> None:
    missing = subprocess.run(
        [str(installed / "python"), "-c", "import pytest"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert "No module named 'pytest'" in missing.stderr
