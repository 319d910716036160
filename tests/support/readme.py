"""The README's shell blocks as the docs test reads them: every command line of every ```sh block, in
README order, with what its trailing comment says about it.

The conventions a README command follows (stated in the README's "Tests" section):

- ``[...]`` is an optional part. It is run when it is concrete, and left out (listed as not run) when it
  holds a placeholder.
- A placeholder is a word in capitals (``FILE``, ``ID``, ``course:C``) or with ``...`` in it
  (``tok_...``, ``ID...``). Outside ``[...]`` it must be made concrete, be one of the values an earlier
  command prints (:data:`PRINTED`), or have its block marked not to run.
- A trailing comment that starts with ``exit N`` states the exit code (0 otherwise).
- A trailing comment that is JSON is what the command prints, or, when the command names a JSON file, what
  that file holds.
- ``<!-- docs-test: skip REASON -->`` on the line before a block's fence: the block is not run, and the
  run lists it with its reason.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cli import COURSEINFRA, answers_health, free_port

#: The marker, on the line before a block's opening fence, of a block that is not run.
SKIP_MARKER = re.compile(r"^<!--\s*docs-test:\s*skip\s+(?P<reason>\S.*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<language>\S*)\s*$")
OPTIONAL = re.compile(r"\[(?P<inside>[^\[\]]*)\]")
PLACEHOLDER = re.compile(r"\S*\.\.\.\S*|(?<![\w.-])[A-Z][A-Z_]*(?![\w=-])")
EXIT = re.compile(r"^exit (?P<code>\d+)\b")

#: Placeholders only an earlier command can fill: (placeholder, the command that prints it, its field).
PRINTED: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("tok_...", ("tokens", "create"), "token_id"),
    ("cit_...", ("tokens", "create"), "secret"),
    ("RUN", ("reports", "generate"), "run_id"),
)

#: The programs a README line may start with (see :class:`ReadmeRun` for what is done with each).
PROGRAMS = ("courseinfra", "curl", "export", "make")

#: No JSON comment: a trailing comment that is prose.
PROSE = object()


@dataclass(frozen=True)
class Command:
    """A command line of a ```sh block."""

    line: int  # of the README, 1-based, where the command starts
    text: str  # as written: continuation lines joined, the trailing comment removed
    comment: str  # the trailing comment, without its '#'; '' if none
    skip: str | None  # why its block is not run (the block's marker), None when it is run


def split_comment(line: str) -> tuple[str, str]:
    """A shell line's command and its trailing comment: a ``#`` at the start of a word, outside quotes."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def commands(markdown: str) -> list[Command]:
    """Every command of the ```sh blocks, in order. Comment lines (``# ...``, alone) are not commands; a
    line ending with a backslash continues on the next one."""
    found: list[Command] = []
    lines = markdown.splitlines()
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        index += 1
        if not fence:
            continue
        marker = SKIP_MARKER.match(lines[index - 2]) if index >= 2 else None
        skip = marker["reason"] if marker else None
        pending: list[str] = []
        start = 0
        while index < len(lines) and not FENCE.match(lines[index]):
            raw = lines[index]
            index += 1
            if fence["language"] != "sh":
                continue
            if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            if not pending:
                start = index
            if raw.rstrip().endswith("\\"):
                pending.append(raw.rstrip()[:-1].strip())
                continue
            text, comment = split_comment(" ".join([*pending, raw.strip()]))
            found.append(Command(start, text, comment, skip))
            pending = []
        index += 1  # the closing fence
    return found


def placeholders(text: str) -> list[str]:
    return [match.group() for match in PLACEHOLDER.finditer(text)]


def optional_parts(text: str) -> tuple[str, list[str]]:
    """The command with its concrete optional parts kept (brackets removed) and those holding a
    placeholder left out; and the parts left out."""
    left_out: list[str] = []

    def choose(match: re.Match[str]) -> str:
        if placeholders(match["inside"]):
            left_out.append(match.group())
            return ""
        return match["inside"]

    return " ".join(OPTIONAL.sub(choose, text).split()), left_out


def words(text: str) -> list[str]:
    return shlex.split(text)


def fill(text: str, printed: dict[str, str]) -> str:
    """``text`` with the placeholders an earlier command printed replaced by their values."""
    for placeholder, value in printed.items():
        text = re.sub(rf"(?<![\w.]){re.escape(placeholder)}(?![\w.])", lambda _, value=value: value, text)
    return text


def expected_exit(comment: str) -> int:
    found = EXIT.match(comment)
    return int(found["code"]) if found else 0


def json_comment(comment: str) -> Any:
    """The JSON a trailing comment states, or :data:`PROSE`."""
    if not comment.startswith(("[", "{", '"')):
        return PROSE
    try:
        return json.loads(comment)
    except json.JSONDecodeError:
        return PROSE


class ReadmeRun:
    """Runs README commands one after the other, as a reader pasting them would, in ``cwd`` with ``env``;
    keeps what it ran, what it did not run (and why) and the problems.

    - ``courseinfra ...`` runs as a process and must exit as its comment states (0 unless it says
      ``exit N``); a JSON comment must match. ``courseinfra serve`` is started on a free port (it runs
      until stopped) once ``/healthz`` answers, and stays up for the lines after it until :meth:`close`.
    - ``curl ...`` calls that server (``localhost:8000`` is its address) with ``--fail``.
    - ``export NAME=value`` sets a variable for the commands after it.
    - ``make TARGET`` is dry-run (``make -n``: the target exists and its recipe expands), never run: the
      targets install, start servers or run the suite.
    - Anything else is a problem unless its block is marked.
    """

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.cwd, self.env, self.logs = cwd, dict(env), logs
        self.printed: dict[str, str] = {}
        self.ran: list[str] = []
        self.not_run: list[str] = []
        self.problems: list[str] = []
        self.server: subprocess.Popen[bytes] | None = None
        self.base = ""

    def __call__(self, command: Command) -> None:
        where = f"README.md:{command.line}: {command.text}"
        if command.skip is not None:
            self.not_run.append(f"{where} -- its block is marked: {command.skip}")
            return
        text, left_out = optional_parts(fill(command.text, self.printed))
        self.not_run.extend(
            f"README.md:{command.line}: {part} -- optional, with a placeholder" for part in left_out
        )
        if unfilled := placeholders(text):
            self.problems.append(
                f"{where}: placeholder {', '.join(unfilled)}: make it concrete, or mark its block "
                "<!-- docs-test: skip REASON -->"
            )
            return
        argv = words(text)
        handlers = {
            "courseinfra": self._courseinfra,
            "curl": self._curl,
            "export": self._export,
            "make": self._make,
        }
        assert set(handlers) == set(PROGRAMS)
        handler = handlers.get(argv[0])
        if handler is None:
            self.problems.append(
                f"{where}: the docs test cannot run {argv[0]!r}: mark its block <!-- docs-test: skip REASON -->"
            )
            return
        handler(where, argv, command.comment)

    def close(self) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()

    def summary(self) -> str:
        lines = [f"ran {len(self.ran)} README commands; did not run {len(self.not_run)}:", *self.not_run]
        return "\n".join(lines)

    def _process(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def _courseinfra(self, where: str, argv: list[str], comment: str) -> None:
        if argv[1:2] == ["serve"]:
            self._serve(where, argv)
            return
        done = self._process([*COURSEINFRA, *argv[1:]])
        expected = expected_exit(comment)
        if done.returncode != expected:
            self.problems.append(
                f"{where}: exit {done.returncode}, expected {expected}: {done.stderr.strip()}"
            )
            return
        self.ran.append(where)
        stated = json_comment(comment)
        if stated is not PROSE:
            self._check_json(where, argv, stated, done.stdout)
        for placeholder, prefix, field in PRINTED:
            if tuple(argv[1 : 1 + len(prefix)]) == prefix:
                try:
                    self.printed[placeholder] = str(json.loads(done.stdout)[field])
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.problems.append(
                        f"{where}: its output has no {field} for {placeholder}: {done.stdout}"
                    )

    def _check_json(self, where: str, argv: list[str], stated: Any, stdout: str) -> None:
        files = [self.cwd / arg for arg in argv[1:] if arg.endswith(".json") and (self.cwd / arg).is_file()]
        what = files[-1].name if files else "its output"
        try:
            actual = json.loads(files[-1].read_text(encoding="utf-8") if files else stdout)
        except json.JSONDecodeError as error:
            self.problems.append(f"{where}: {what} is not the JSON its comment states: {error}")
            return
        if actual != stated:
            self.problems.append(f"{where}: its comment states {stated!r}, {what} holds {actual!r}")

    def _serve(self, where: str, argv: list[str]) -> None:
        port = free_port()
        log = self.logs / "serve.log"
        with log.open("w") as out:
            self.server = subprocess.Popen(
                [*COURSEINFRA, *argv[1:], "--port", str(port)],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        if not answers_health(base, self.server):
            self.problems.append(f"{where}: the server did not answer /healthz: {log.read_text()}")
            return
        self.base = base
        self.ran.append(f"{where} -- on a free port until the end, /healthz answered")

    def _curl(self, where: str, argv: list[str], comment: str) -> None:
        if not self.base:
            self.problems.append(f"{where}: no server: a `courseinfra serve` line above it starts one")
            return
        address = re.compile(r"^(https?://)?localhost:8000(?=/|$)")
        done = self._process(
            [
                argv[0],
                "--fail",
                "--silent",
                "--show-error",
                *(address.sub(self.base, arg) for arg in argv[1:]),
            ]
        )
        if done.returncode != expected_exit(comment):
            self.problems.append(f"{where}: curl exit {done.returncode}: {done.stderr.strip()}")
            return
        self.ran.append(where)

    def _export(self, where: str, argv: list[str], comment: str) -> None:
        for assignment in argv[1:]:
            name, _, value = assignment.partition("=")
            self.env[name] = value
        self.ran.append(where)

    def _make(self, where: str, argv: list[str], comment: str) -> None:
        done = self._process(["make", "-n", *argv[1:]])
        if done.returncode != 0:
            self.problems.append(f"{where}: make -n failed: {done.stderr.strip()}")
            return
        self.not_run.append(f"{where} -- a make target: dry-run with make -n (it exists), not run")
