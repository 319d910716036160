"""``courseinfra`` as a real process: run it on a test's settings, read its JSON, expect a failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from courseinfra.settings import Settings

#: The ``courseinfra`` command, as a real process.
COURSEINFRA = [sys.executable, "-m", "courseinfra"]


class Cli:
    """Runs ``courseinfra`` in a subprocess on the home, database and Redis of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COURSEINFRA_")}
        self.env["COURSEINFRA_HOME"] = str(settings.home)
        if settings.database_url:
            self.env["COURSEINFRA_DATABASE_URL"] = settings.database_url
        if settings.redis_url:
            self.env["COURSEINFRA_REDIS_URL"] = settings.redis_url
        if settings.event_stream != "off":
            self.env["COURSEINFRA_EVENT_STREAM"] = settings.event_stream

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COURSEINFRA, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            timeout=120,
            check=False,
        )


def run_json(cli: Cli, *args: str, stdin: str | None = None) -> Any:
    done = cli(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_lines(cli: Cli, *args: str) -> list[Any]:
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def fails(cli: Cli, *args: str, exit_code: int = 1) -> str:
    done = cli(*args)
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    assert done.stdout == ""
    return done.stderr
