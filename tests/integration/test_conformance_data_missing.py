"""Without the peer systems' conformance data, a run says so in one line and leaves out only the tests
that read it; in CI it refuses to run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import REPO

pytestmark = pytest.mark.slow


def run_pytest(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"}}
    env.update(COURSEINFRA_TEST_CONFORMANCE=str(tmp_path / "absent"), COURSEINFRA_TEST_BACKENDS="embedded")
    if ci:
        env["CI"] = "true"
        env["COURSEINFRA_TEST_BACKENDS"] = "embedded,postgres"
        # Its own lock file: this run holds the shared one. It only collects: no server is touched.
        env["TMPDIR"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/conformance", "--co"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_run_without_the_data_says_so_in_one_line_and_deselects_its_tests(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, ci=False)
    lines = [line for line in done.stdout.splitlines() if "no conformance data at" in line]
    assert len(lines) == 1, done.stdout
    assert "tests that read it are deselected" in lines[0]
    assert "deselected" in done.stdout.splitlines()[-1]
    assert done.returncode == 5, done.stdout  # nothing left to run


def test_ci_without_the_data_refuses_to_run(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, ci=True)
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert "CI runs the conformance tests" in done.stdout + done.stderr
