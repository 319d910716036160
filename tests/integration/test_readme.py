"""The README runs: every command of its ```sh blocks, in README order, on the embedded default (a fresh
home, no server), exits as the README says and prints what its JSON comment states, so that a command
renamed or removed from the CLI, a changed option or a stale example fails here. What it does not run
(make targets, optional parts with a placeholder, marked blocks) it lists; a line it cannot run that is not
marked fails it. The conventions are in tests/support/readme.py and the README's "Tests" section."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.readme import ReadmeRun, commands
from tests.support.servers import REPO

README = REPO / "README.md"


@pytest.mark.slow
def test_every_readme_command_runs_on_the_embedded_default(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("COURSEINFRA_")}
    env["COURSEINFRA_HOME"] = str(tmp_path / "home")
    run = ReadmeRun(REPO, env, tmp_path)
    try:
        for command in commands(README.read_text(encoding="utf-8")):
            run(command)
    finally:
        run.close()
    print(run.summary())
    assert run.problems == [], "\n".join(run.problems)
    assert len(run.ran) >= 50, run.summary()
