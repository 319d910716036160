"""The user directory's records: a :class:`User`, and the rules that read import files into users.

Reading never stops at the first bad row: every row is checked and each bad one is reported as a
:class:`RowError` with its line number and a stable ``code``, so that an import can refuse the whole file
and tell the operator everything to fix in one go.

An import record has the columns (CSV) or keys (JSON) ``user_id`` (required), ``username``, ``email``,
``name``, ``organisation``, ``last_login`` (``last_login_at`` is accepted too, so that what
``users list`` prints can be imported again), ``is_staff`` and ``profile`` (JSON only: an object of
strings). Any other column or key, and one named ``profile.<field>``, is a profile field. ``created_at``
and ``updated_at`` are ignored: the directory sets them. Empty text counts as absent.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any

from courseinfra.domain.errors import DomainError
from courseinfra.domain.quoting import json_text

#: The longest user id, username, email, name or organisation (the columns are 255 characters wide).
MAX_TEXT = 255

PROFILE_PREFIX = "profile."
LAST_LOGIN_NAMES = ("last_login", "last_login_at")
TEXT_FIELDS = ("username", "email", "name", "organisation")
#: Set by the directory, never read from a file.
IGNORED_FIELDS = frozenset({"created_at", "updated_at"})
RESERVED_FIELDS = frozenset({"user_id", *TEXT_FIELDS, *LAST_LOGIN_NAMES, "is_staff", "profile"})

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
# Deliberately loose: one @, no spaces, a dot in the domain. Deliverability is the mail system's job.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


@dataclass(frozen=True, slots=True)
class User:
    """A user of the directory.

    - ``user_id``: the key, as the rest of the platform names the user (``userId`` in events);
    - ``username``: unique among users when present;
    - ``last_login_at``: aware (UTC), or None if the user never logged in;
    - ``profile``: free fields, string to string;
    - ``created_at`` / ``updated_at``: set by the directory (None on a record not stored yet);
      ``updated_at`` is the last change by an import or a profile update (a login does not touch it).
    """

    user_id: str
    username: str | None = None
    email: str | None = None
    name: str | None = None
    organisation: str | None = None
    last_login_at: datetime | None = None
    is_staff: bool = False
    profile: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A bad row of an import file. ``line`` is the file line where the row starts (CSV, JSON lines) or,
    in a JSON array, the item's position counted from 1."""

    line: int
    code: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class InvalidUserRecords(DomainError):
    """An import file with bad rows; ``errors`` lists every one of them."""

    code = "invalid-users"

    def __init__(self, errors: Iterable[RowError]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"{len(self.errors)} bad row(s): " + "; ".join(str(e) for e in self.errors[:3]))


class UsernameTaken(DomainError):
    """Usernames that other users hold: ``conflicts`` maps each user id to the holder of its username."""

    code = "username-taken"

    def __init__(self, conflicts: Mapping[str, tuple[str, str]]) -> None:
        #: user id -> (username, the id of the user who holds it)
        self.conflicts = dict(conflicts)
        described = ", ".join(
            f"{username} (wanted by {user_id}, held by {holder})"
            for user_id, (username, holder) in sorted(self.conflicts.items())
        )
        super().__init__(f"username taken: {described}")


class InvalidProfile(DomainError):
    code = "invalid-profile"


class InvalidTimestamp(DomainError):
    code = "invalid-timestamp"


class RecordFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    JSONL = "jsonl"


def guess_format(filename: str) -> RecordFormat | None:
    """The format an import file's extension names (``.csv``, ``.json``, ``.jsonl`` or ``.ndjson``)."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {"csv": RecordFormat.CSV, "json": RecordFormat.JSON, "jsonl": RecordFormat.JSONL}.get(
        suffix, RecordFormat.JSONL if suffix == "ndjson" else None
    )


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 timestamp with a zone (``2026-01-31T09:00:00Z``, ``...+05:30``), in UTC.

    A timestamp without a zone is refused rather than guessed: the stores compare timestamps as UTC.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidTimestamp(f"{json_text(text)} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise InvalidTimestamp(f"{json_text(text)} has no time zone (add Z or an offset such as +05:30)")
    return value.astimezone(UTC)


def check_profile_changes(fields: Mapping[str, Any]) -> dict[str, str | None]:
    """Profile changes as given to a profile update: a field name to its new value, or None to remove
    it. Names are non-empty and at most :data:`MAX_TEXT` long; values are strings."""
    checked: dict[str, str | None] = {}
    for name, value in fields.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidProfile("a profile field needs a non-empty name")
        if len(name) > MAX_TEXT:
            raise InvalidProfile(f"profile field name {name[:20]}... is longer than {MAX_TEXT} characters")
        if value is not None and not isinstance(value, str):
            raise InvalidProfile(
                f"profile field {name}: {json_text(value)} is not a string (or null, to remove it)"
            )
        checked[name] = value
    return checked


def apply_profile_changes(profile: Mapping[str, str], changes: Mapping[str, str | None]) -> dict[str, str]:
    """``profile`` with ``changes`` applied (None removes a field), keys in order."""
    updated = dict(profile)
    for name, value in changes.items():
        if value is None:
            updated.pop(name, None)
        else:
            updated[name] = value
    return dict(sorted(updated.items()))


def profile_diff(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str | None]:
    """The fields that differ: their value in ``after``, None for the ones it removed."""
    changed: dict[str, str | None] = {k: v for k, v in after.items() if before.get(k) != v}
    changed.update({k: None for k in before if k not in after})
    return dict(sorted(changed.items()))


# --- reading import records ------------------------------------------------------------------------


class _Bad(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"invalid-{name.replace('_', '-')}", f"{name} {json_text(value)} is not text")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise _Bad("too-long", f"{name} is longer than {MAX_TEXT} characters")
    return value or None


def _boolean(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if not word:
            return False
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _Bad("invalid-boolean", f"is_staff {json_text(value)} is not a boolean (true/false, yes/no, 1/0)")


def _record_to_user(user_id: str, record: Mapping[str, Any], problems: list[_Bad]) -> User | None:
    """One record (CSV row or JSON object) to a user; each problem found is appended to ``problems``
    (all of them, not only the first) and the user is None if there was any."""
    before = len(problems)

    def check(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except _Bad as bad:
            problems.append(bad)
            return None

    texts: dict[str, str | None] = {}
    for name in TEXT_FIELDS:
        texts[name] = check(partial(_text, record.get(name), name))
    if texts["email"] is not None and not EMAIL.match(texts["email"]):
        problems.append(_Bad("invalid-email", f"email {json_text(texts['email'])} is not an email address"))
    last_login = check(lambda: _last_login(record))
    is_staff = check(lambda: _boolean(record.get("is_staff")))
    profile = check(lambda: _profile_of(record))
    if len(problems) > before:
        return None
    return User(
        user_id=user_id,
        username=texts["username"],
        email=texts["email"],
        name=texts["name"],
        organisation=texts["organisation"],
        last_login_at=last_login,
        is_staff=bool(is_staff),
        profile=profile,
    )


def _last_login(record: Mapping[str, Any]) -> datetime | None:
    given = [name for name in LAST_LOGIN_NAMES if _present(record.get(name))]
    if len(given) > 1:
        raise _Bad("invalid-timestamp", "give last_login or last_login_at, not both")
    if not given:
        return None
    raw = record[given[0]]
    if not isinstance(raw, str):
        raise _Bad("invalid-timestamp", f"{given[0]} {json_text(raw)} is not a timestamp")
    try:
        return parse_timestamp(raw)
    except InvalidTimestamp as error:
        raise _Bad("invalid-timestamp", f"{given[0]}: {error}") from None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _profile_of(record: Mapping[str, Any]) -> dict[str, str]:
    profile: dict[str, str] = {}

    def put(name: str, value: Any) -> None:
        if not _present(value):
            return
        if not isinstance(value, str):
            raise _Bad("invalid-profile", f"profile field {name}: {json_text(value)} is not a string")
        if name in profile:
            raise _Bad("invalid-profile", f"profile field {name} is given twice")
        if len(name) > MAX_TEXT:
            raise _Bad("invalid-profile", f"profile field name {name[:20]}... is too long")
        profile[name] = value.strip()

    nested = record.get("profile")
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise _Bad("invalid-profile", "profile is not an object of strings")
        for name, value in nested.items():
            put(name, value)
    for name, value in record.items():
        if name in RESERVED_FIELDS or name in IGNORED_FIELDS:
            continue
        put(name.removeprefix(PROFILE_PREFIX), value)
    return dict(sorted(profile.items()))


#: The fields of a user a record may leave out (its profile is merged field by field).
MERGED_FIELDS = ("username", "email", "name", "organisation", "last_login_at", "is_staff")


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A good row of an import file: the user it gives, its line, and which of :data:`MERGED_FIELDS` it
    gives (a column or key present, not empty)."""

    line: int
    user: User
    given: frozenset[str]

    def merged_into(self, stored: User | None) -> User:
        """The user this record makes of ``stored``: the fields it gives replace the stored ones, the
        others are kept, and its profile fields are set on the stored profile (none removed)."""
        if stored is None:
            return self.user
        kept = {name: getattr(stored, name) for name in MERGED_FIELDS if name not in self.given}
        return replace(
            self.user, **kept, profile=dict(sorted({**stored.profile, **self.user.profile}.items()))
        )


def _given(record: Mapping[str, Any]) -> frozenset[str]:
    names = {
        name
        for name in ("username", "email", "name", "organisation", "is_staff")
        if _present(record.get(name))
    }
    if any(_present(record.get(name)) for name in LAST_LOGIN_NAMES):
        names.add("last_login_at")
    return frozenset(names)


NumberedUsers = list[UserRecord]


def _check_all(
    numbered: Iterable[tuple[int, Mapping[str, Any] | RowError]],
) -> tuple[NumberedUsers, list[RowError]]:
    """Users from numbered records with their line, and every error: each problem of each record, and
    repeated user ids or usernames (reported on the later row, naming the first; a row counts for this
    even when its other fields are bad)."""
    users: NumberedUsers = []
    errors: list[RowError] = []
    first_of_id: dict[str, int] = {}
    first_of_username: dict[str, int] = {}
    for line, record in numbered:
        if isinstance(record, RowError):
            errors.append(record)
            continue
        problems: list[_Bad] = []
        try:
            user_id = _text(record.get("user_id"), "user_id")
        except _Bad as bad:
            problems.append(bad)
            user_id = None
        else:
            if user_id is None:
                problems.append(_Bad("missing-user-id", "user_id is missing or empty"))
            elif user_id in first_of_id:
                problems.append(
                    _Bad(
                        "duplicate-user-id",
                        f"user_id {user_id} is repeated (first on line {first_of_id[user_id]})",
                    )
                )
            else:
                first_of_id[user_id] = line
        username = record.get("username")
        if isinstance(username, str) and username.strip():
            username = username.strip()
            if username in first_of_username:
                problems.append(
                    _Bad(
                        "duplicate-username",
                        f"username {username} is repeated (first on line {first_of_username[username]})",
                    )
                )
            else:
                first_of_username[username] = line
        user = _record_to_user(user_id or "", record, problems)
        if problems:
            errors.extend(RowError(line, bad.code, bad.reason) for bad in problems)
        elif user is not None:
            users.append(UserRecord(line, user, _given(record)))
    return users, errors


def _parse_csv(text: str) -> tuple[NumberedUsers, list[RowError]]:
    """CSV text with a header row; ``line`` is the file line where each row starts (a quoted value may
    span lines). Blank lines are skipped."""
    return _check_all(_csv_records(text))


def _csv_records(text: str) -> Iterator[tuple[int, Mapping[str, Any] | RowError]]:
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), strict=True)
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                problem = _header_problem(header)
                if problem:
                    yield line, RowError(line, "invalid-header", problem)
                    return
                continue
            if len(row) != len(header):
                yield (
                    line,
                    RowError(
                        line,
                        "invalid-row",
                        f"the row has {len(row)} values, the header {len(header)} columns",
                    ),
                )
                continue
            yield line, dict(zip(header, row, strict=True))
    except csv.Error as error:
        yield start, RowError(start, "invalid-csv", f"not CSV: {error}")
        return
    if header is None:
        yield 1, RowError(1, "invalid-header", "the file is empty: expected a header row")


def _header_problem(header: list[str]) -> str | None:
    if "user_id" not in header:
        return "the header has no user_id column"
    seen: set[str] = set()
    for name in header:
        if not name or name == PROFILE_PREFIX:
            return "the header has a column without a name"
        if name in seen:
            return f"the header names column {name} twice"
        seen.add(name)
    return None


def _parse_json(text: str) -> tuple[NumberedUsers, list[RowError]]:
    """A JSON array of objects; ``line`` is each item's position, counted from 1."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        return [], [RowError(error.lineno, "invalid-json", f"not JSON: {error.msg} (column {error.colno})")]
    if not isinstance(items, list):
        return [], [RowError(1, "invalid-json", "expected a JSON array of user objects")]
    return _check_all(_objects(enumerate(items, start=1)))


def _parse_json_lines(text: str) -> tuple[NumberedUsers, list[RowError]]:
    """JSON lines, one object a line; blank lines are skipped. Lines are split on line feeds only, as a
    file is read (a JSON string may hold U+2028)."""

    def decoded() -> Iterator[tuple[int, Any]]:
        for line, raw in enumerate(text.split("\n"), start=1):
            if not raw.strip():
                continue
            try:
                yield line, json.loads(raw)
            except json.JSONDecodeError as error:
                yield line, RowError(line, "invalid-json", f"not JSON: {error.msg} (column {error.colno})")

    return _check_all(_objects(decoded()))


def _objects(items: Iterable[tuple[int, Any]]) -> Iterator[tuple[int, Mapping[str, Any] | RowError]]:
    for line, item in items:
        if isinstance(item, RowError | Mapping):
            yield line, item
        else:
            yield line, RowError(line, "invalid-record", f"expected a JSON object, got {type(item).__name__}")


def parse_records_with_lines(text: str, fmt: RecordFormat) -> tuple[NumberedUsers, list[RowError]]:
    """:func:`parse_records`, each user with the line (or array item) of its row."""
    if fmt is RecordFormat.CSV:
        return _parse_csv(text)
    if fmt is RecordFormat.JSON:
        return _parse_json(text)
    return _parse_json_lines(text)


def parse_records(text: str, fmt: RecordFormat) -> tuple[list[User], list[RowError]]:
    """Users from an import file's text in ``fmt``, and every bad row (empty when all are good). Every
    row is checked, whatever the errors before it."""
    numbered, errors = parse_records_with_lines(text, fmt)
    return [record.user for record in numbered], errors
