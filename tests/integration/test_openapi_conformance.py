"""The OpenAPI document says what the server does: schemathesis runs every operation of ``/openapi.json``
against a real ``courseinfra serve`` on seeded data, with a token of each role, and every check passes
(no server error, no undocumented status, no schema-valid request refused, no schema-invalid one taken,
every answer as its schema says). On every backend."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from courseinfra.domain.access import ROLE_PERMISSIONS, Permission, Role
from courseinfra.settings import Settings
from tests.support.cli import COURSEINFRA, Cli, answers_health, free_port, run_json
from tests.support.servers import EXAMPLES

pytestmark = pytest.mark.slow

#: ``st run`` of the installed schemathesis, as a real process.
SCHEMATHESIS = [sys.executable, "-m", "schemathesis.cli"]

#: Every check, on every operation. Few examples per operation, no shrinking and one worker per run
#: (runs go side by side, one a core), so that the runs of every role stay within a minute and a half
#: per backend on two cores; the seed makes a failure reproducible.
OPTIONS = [
    "--checks=all",
    "--max-examples=6",
    "--no-shrink",
    "--seed=20261204",
    "--workers=1",
    "--request-timeout=30",
    # The API refuses a NUL character anywhere in a request's text (422: no store keeps one), a rule of
    # every string that the document does not repeat on each.
    "--generation-allow-x00=false",
    "--generation-database=none",
    "--no-color",
    "--output-truncate=false",
]


def phases(role: Role) -> str:
    """Every phase for a role holding every permission: its requests reach each operation's validation,
    which the coverage phase's boundary and negative values are for (the same for any role that may
    call it). For the other roles the examples, fuzzing (valid and invalid data) and stateful phases:
    what each is answered (refusals, masked personal data, lists within a scope) against the schema."""
    if ROLE_PERMISSIONS[role] == frozenset(Permission):
        return "--phases=examples,coverage,fuzzing,stateful"
    return "--phases=examples,fuzzing,stateful"


#: Statuses the checks take beyond their defaults.
CONFIG = """\
[checks.positive_data_acceptance]
# 412: an If-Match the schema allows that is not the group's current ETag (a precondition on the
# group's state, as 409 is a conflict with it).
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]

[checks.missing_required_header]
# 428 precondition-required: the answer to a change without its required If-Match (RFC 6585).
expected-statuses = ["400", "401", "403", "406", "415", "422", "428"]
"""

#: Hooks (``SCHEMATHESIS_HOOKS``): how JSON lines go on the wire, and the refusals of schema-valid
#: requests (ST202) that are not failures.
HOOKS = """\
import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import RejectedPositiveData

schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# The error codes of rules JSON Schema cannot state, by operation: a rule across fields, across a
# document's nodes or on what is stored. Every other refusal of a schema-valid request fails.
WAIVED = {
    # the dates in order: start, last day to enrol, end
    "POST /v1/batches": {"invalid-batch"},
    # the course must be published
    "POST /v1/enrolments/recompute": {"course-not-published"},
    # a criteria tree is checked against the registered criterion types and the group's scope; the
    # users a group names (include, exclude, legacy members) must be in the user directory
    "POST /v1/groups": {"invalid-criteria", "invalid-members-file"},
    "PUT /v1/groups/{group_id}": {"invalid-criteria", "invalid-members-file"},
    "PATCH /v1/groups/{group_id}": {"invalid-criteria", "invalid-members-file"},
    "POST /v1/groups/{group_id}/preview": {"invalid-criteria"},
    # the group must be linked to a legacy group
    "POST /v1/groups/{group_id}/legacy-members": {"invalid-group", "invalid-members-file"},
    # a CSV file whose rows name users the directory has
    "POST /v1/groups/{group_id}/members/import": {"invalid-members-file"},
    # a file of user records (CSV, JSON lines) in the format the content type or ?format names
    "POST /v1/users/import": {"invalid-users"},
    # a hierarchy's rules span its nodes: a collection once, an id not both a collection and a leaf
    "PUT /v1/content/{identifier}/hierarchy": {"invalid-hierarchy"},
}


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    components = case.meta.components if case.meta is not None else {}
    negative = {location for location, part in components.items() if part.mode.is_negative}
    if isinstance(failure, AcceptedNegativeData):
        # A text body (JSON lines, CSV) mutated to another JSON type goes on the wire as its text,
        # which is a string as the schema says (schemathesis knows this of text/plain only).
        media_type = case.media_type or ""
        text = media_type == "application/x-ndjson" or media_type.startswith("text/")
        return not (negative == {ParameterLocation.BODY} and text and not isinstance(case.body, str))
    if not isinstance(failure, RejectedPositiveData):
        return True
    # The coverage phase calls a case positive whose header it left negative (If-Match: 0 beside a
    # valid body): such a case is not schema-valid.
    if negative:
        return False
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return True
    return code not in WAIVED.get(f"{case.method.upper()} {case.operation.path}", set())
"""

#: Revoking a token could revoke the run's own (the stateful phase finds its id in ``GET /v1/tokens``):
#: for a role that may revoke tokens, it runs apart, after every other operation.
REVOKE = "DELETE /v1/tokens/{token_id}"

#: A line of the summary: ``❌ ST202 Schema-valid request rejected: 3``, ``🚫 Runtime Error: 1``.
PROBLEM = re.compile(r"^\s+(?:❌|🚫) (.+): (\d+)$", re.MULTILINE)


def seed(cli: Cli) -> None:
    """Real data behind the routes: a published course, a batch with a learner, users, groups, AUDIT
    events and failed events. After the first command (which creates the database), two at a time."""
    run_json(cli, "content", "publish", str(EXAMPLES / "democourse.json"))

    def learning() -> None:
        run_json(cli, "batches", "create", "--course", "democourse", "--batch", "demobatch", "--name", "Demo")
        run_json(cli, "enrol", "learner-1", "demobatch")
        ingested = cli("ingest", str(EXAMPLES / "progress-events.jsonl"))
        assert ingested.returncode == 1, ingested.stderr  # some of its events fail, on purpose: kept

    def directory() -> None:
        run_json(cli, "users", "import", str(EXAMPLES / "users.csv"))
        low = ["low", "--name", "Low", "--scope", "course:democourse"]
        run_json(cli, "groups", "create", *low, "--criteria", str(EXAMPLES / "low-progress-group.json"))
        staff = ["staff", "--name", "Staff", "--scope", "instance", "--include", "mentor-1"]
        run_json(cli, "groups", "create", *staff)

    with ThreadPoolExecutor(2) as pool:
        for step in [pool.submit(learning), pool.submit(directory)]:
            step.result()


def create_token(cli: Cli, role: Role) -> str:
    """The secret of a new token of ``role`` with the personal data grant; a role limited to a scope is
    given the seeded course."""
    args = ["tokens", "create", "--name", f"schemathesis {role}", "--role", role.value, "--pii"]
    done = cli(*args)
    if done.returncode != 0 and "needs a scope" in done.stderr:
        done = cli(*args, "--scope", "course:democourse")
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["secret"])


@contextmanager
def serving(cli: Cli, log: Path) -> Iterator[str]:
    """``courseinfra serve`` on a free loopback port until the block ends; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        server = subprocess.Popen(
            [*COURSEINFRA, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=cli.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            assert answers_health(base, server), log.read_text()
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def schemathesis(cli: Cli, base: str, secret: str, selection: list[str], folder: Path) -> tuple[int, str]:
    """``st run`` over ``selection`` of the operations with the bearer ``secret``: its exit code and
    output."""
    (folder / "schemathesis.toml").write_text(CONFIG)
    (folder / "schemathesis_hooks.py").write_text(HOOKS)
    done = subprocess.run(
        [
            *SCHEMATHESIS,
            f"--config-file={folder / 'schemathesis.toml'}",
            "run",
            f"{base}/openapi.json",
            f"--header=Authorization: Bearer {secret}",
            *OPTIONS,
            *selection,
        ],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**cli.env, "SCHEMATHESIS_HOOKS": str(folder / "schemathesis_hooks.py")},
        timeout=300,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def runs_of(role: Role) -> list[tuple[str, list[str]]]:
    """The runs of a role's token: every operation at once, but revoking a token apart (and last) for a
    role that may revoke its own."""
    if Permission.ADMINISTER not in ROLE_PERMISSIONS[role]:
        return [(role.value, [phases(role)])]
    return [
        (role.value, [phases(role), f"--exclude-name={REVOKE}"]),
        (f"{role.value} revoking", [phases(role), f"--include-name={REVOKE}"]),
    ]


def test_every_operation_answers_as_the_openapi_document_says(settings: Settings, tmp_path: Path) -> None:
    cli = Cli(settings)
    seed(cli)

    def run_role(role: Role) -> dict[str, tuple[int, str]]:
        secret = create_token(cli, role)
        folder = tmp_path / role.value
        folder.mkdir()
        return {name: schemathesis(cli, base, secret, selection, folder) for name, selection in runs_of(role)}

    with serving(cli, tmp_path / "serve.log") as base, ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        runs = {name: run for done in pool.map(run_role, Role) for name, run in done.items()}
    problems = {
        name: dict(PROBLEM.findall(output)) or f"exit code {code}"
        for name, (code, output) in runs.items()
        if code != 0
    }
    outputs = "\n\n".join(f"===== {name} =====\n{runs[name][1]}" for name in problems)
    assert problems == {}, outputs
