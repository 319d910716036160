"""``courseinfra`` as a real process: run it on a test's settings, read its JSON, expect a failure."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

import httpx

from courseinfra.settings import Settings

#: The ``courseinfra`` command, as a real process.
COURSEINFRA = [sys.executable, "-m", "courseinfra"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_health(base: str, server: subprocess.Popen[Any], *, seconds: float = 60) -> bool:
    """Wait for the ``courseinfra serve`` process ``server`` at ``base`` to answer ``GET /healthz`` with
    200: True once it does, False if it exits first or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


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
