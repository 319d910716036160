"""How the docs test reads the README (tests/support/readme.py), and that every README command is one it
can run: a placeholder left in a command, or a program it does not run, fails here in the fast tier
before tests/integration/test_readme.py runs the commands."""

from __future__ import annotations

from pathlib import Path

from tests.support.readme import (
    PRINTED,
    PROGRAMS,
    PROSE,
    Command,
    ReadmeRun,
    commands,
    expected_exit,
    fill,
    json_comment,
    optional_parts,
    placeholders,
    split_comment,
    words,
)
from tests.support.servers import REPO

SAMPLE = """\
Text with `courseinfra not a command`.

```sh
courseinfra content publish examples/democourse.json     # store + publish
# a comment line
courseinfra groups create g --name "Below 30% # not a comment" \\
  --criteria examples/c.json                             # {"type": "manual"}
                                                         # a comment that goes on
```

```
not sh: courseinfra layout
```

<!-- docs-test: skip needs a mail server -->
```sh
sendmail someone
```
"""


def test_the_commands_of_the_sh_blocks_in_order() -> None:
    assert commands(SAMPLE) == [
        Command(4, "courseinfra content publish examples/democourse.json", "store + publish", None),
        Command(
            6,
            'courseinfra groups create g --name "Below 30% # not a comment" --criteria examples/c.json',
            '{"type": "manual"}',
            None,
        ),
        Command(17, "sendmail someone", "", "needs a mail server"),
    ]


def test_a_comment_starts_a_word_outside_quotes() -> None:
    assert split_comment("courseinfra x 'a # b' c#d  # note") == ("courseinfra x 'a # b' c#d", "note")
    assert split_comment("courseinfra x") == ("courseinfra x", "")


def test_placeholders_are_words_in_capitals_or_with_an_ellipsis() -> None:
    found = placeholders("courseinfra x FILE --scope course:C tok_... ID... b1 Blue COURSEINFRA_HOME=h")
    assert found == ["FILE", "C", "tok_...", "ID..."]


def test_optional_parts_run_when_concrete() -> None:
    assert optional_parts("courseinfra failed list [--skipped] [--after POSITION] [--batch B ...]") == (
        "courseinfra failed list --skipped",
        ["[--after POSITION]", "[--batch B ...]"],
    )


def test_printed_values_fill_their_placeholders_only() -> None:
    text = 'curl -H "Bearer cit_..." x; courseinfra reports status RUN RUNNING'
    assert fill(text, {"cit_...": "cit_abc", "RUN": "r1"}) == (
        'curl -H "Bearer cit_abc" x; courseinfra reports status r1 RUNNING'
    )


def test_what_a_comment_states() -> None:
    assert expected_exit("exit 1: when an event failed") == 1
    assert expected_exit("links that differ; exit 1 if any") == 0
    assert json_comment('["resource1","resource2"]') == ["resource1", "resource2"]
    assert json_comment('{"token_id": "tok_...", ...}') is PROSE
    assert json_comment("every key of a root") is PROSE


def test_a_line_the_run_cannot_run_is_a_problem_unless_marked(tmp_path: Path) -> None:
    run = ReadmeRun(tmp_path, {}, tmp_path)
    run(Command(1, "sendmail someone", "", None))
    run(Command(2, "courseinfra content put FILE", "", None))
    run(Command(3, "pip install courseinfra", "", "needs the network"))
    assert run.problems == [
        "README.md:1: sendmail someone: the docs test cannot run 'sendmail': mark its block "
        "<!-- docs-test: skip REASON -->",
        "README.md:2: courseinfra content put FILE: placeholder FILE: make it concrete, or mark its block "
        "<!-- docs-test: skip REASON -->",
    ]
    assert run.ran == []
    assert run.not_run == ["README.md:3: pip install courseinfra -- its block is marked: needs the network"]


def test_every_readme_command_is_one_the_docs_test_runs() -> None:
    """Without running anything: each command of the README, its optional parts with a placeholder left
    out and the values earlier commands print filled in, has no placeholder and a program the docs test
    runs (or its block is marked)."""
    found = commands((REPO / "README.md").read_text(encoding="utf-8"))
    printed = {placeholder: "value" for placeholder, _, _ in PRINTED}
    unrunnable = []
    for command in found:
        if command.skip is not None:
            continue
        text, _ = optional_parts(fill(command.text, printed))
        if placeholders(text) or words(text)[0] not in PROGRAMS:
            unrunnable.append(f"README.md:{command.line}: {command.text}")
    assert len(found) > 50
    assert unrunnable == []
