"""Reading user import files: every error kind, its line number, and profile fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from courseinfra.domain.users import (
    InvalidProfile,
    InvalidTimestamp,
    RecordFormat,
    RowError,
    User,
    apply_profile_changes,
    check_profile_changes,
    guess_format,
    parse_records,
    parse_timestamp,
    profile_diff,
)

CSV = RecordFormat.CSV
JSON = RecordFormat.JSON
JSONL = RecordFormat.JSONL


def codes(errors: list[RowError]) -> list[tuple[int, str]]:
    return [(e.line, e.code) for e in errors]


def test_a_good_csv_file() -> None:
    text = (
        "user_id,username,email,name,organisation,last_login,is_staff,district,profile.school\n"
        "u1, ada ,ada@example.org,Ada,org1,2026-01-31T10:00:00+01:00,yes,North,Hill\n"
        "u2,,,,,,,,\n"
    )
    users, errors = parse_records(text, CSV)
    assert errors == []
    assert users == [
        User(
            user_id="u1",
            username="ada",
            email="ada@example.org",
            name="Ada",
            organisation="org1",
            last_login_at=datetime(2026, 1, 31, 9, 0, tzinfo=UTC),
            is_staff=True,
            profile={"district": "North", "school": "Hill"},
        ),
        User(user_id="u2"),
    ]


def test_every_bad_csv_row_is_reported_with_its_file_line() -> None:
    text = (
        "user_id,username,email,last_login,is_staff\n"  # line 1
        ",a,a@example.org,,\n"  # 2: no user_id
        "u2,b,not-an-email,,\n"  # 3
        "\n"  # 4: blank, skipped
        "u3,c,,yesterday,\n"  # 5
        "u4,d,,2026-01-01T00:00:00,\n"  # 6: no zone
        "u5,e,,,maybe\n"  # 7
        "u6,a,,,\n"  # 8: username a again
        "u5,f,,,\n"  # 9: u5 again (its first row was bad, it still counts)
        "u7,g\n"  # 10: too few values
        'u8,"h\n'  # 11: a quoted value over two lines
        'h",h@example.org,,\n'
        "u9,i,,,\n"  # 13
    )
    users, errors = parse_records(text, CSV)
    assert codes(errors) == [
        (2, "missing-user-id"),
        (3, "invalid-email"),
        (5, "invalid-timestamp"),
        (6, "invalid-timestamp"),
        (7, "invalid-boolean"),
        (8, "duplicate-username"),
        (9, "duplicate-user-id"),
        (10, "invalid-row"),
    ]
    assert str(errors[0]) == "line 2: user_id is missing or empty"
    assert "no time zone" in errors[3].reason
    assert errors[5].reason == "username a is repeated (first on line 2)"
    assert errors[6].reason == "user_id u5 is repeated (first on line 7)"
    assert [u.user_id for u in users] == ["u8", "u9"]
    assert users[0].username == "h\nh"


def test_a_row_with_several_problems_reports_each() -> None:
    text = "user_id,email,is_staff,last_login\nu1,bad,maybe,soon\n"
    _, errors = parse_records(text, CSV)
    assert codes(errors) == [(2, "invalid-email"), (2, "invalid-timestamp"), (2, "invalid-boolean")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the file is empty: expected a header row"),
        ("username,email\nx,x@example.org\n", "the header has no user_id column"),
        ("user_id,email,email\n", "the header names column email twice"),
        ("user_id,,email\n", "the header has a column without a name"),
    ],
)
def test_a_bad_csv_header_is_one_error_on_line_1(text: str, reason: str) -> None:
    users, errors = parse_records(text, CSV)
    assert users == []
    assert errors == [RowError(1, "invalid-header", reason)]


def test_a_csv_header_may_follow_blank_lines_and_a_byte_order_mark() -> None:
    users, errors = parse_records("\ufeff\nuser_id\nu1\n", CSV)
    assert (errors, [u.user_id for u in users]) == ([], ["u1"])


def test_profile_columns_and_keys() -> None:
    users, errors = parse_records("user_id,district,profile.district\nu1,North,South\n", CSV)
    assert users == []
    assert errors == [RowError(2, "invalid-profile", "profile field district is given twice")]
    users, errors = parse_records("user_id,created_at,updated_at,profile.school,team\nu1,x,y,,blue\n", CSV)
    assert errors == []
    assert users[0].profile == {"team": "blue"}, "an empty value is no field; created_at is the directory's"


def test_json_array_errors_count_items_from_1() -> None:
    items = [
        {"user_id": "u1", "profile": {"district": "North"}, "is_staff": True, "team": "blue"},
        {"user_id": "u2", "profile": {"age": 7}},
        "not an object",
        {"user_id": "u1"},
        {"user_id": "u3", "profile": ["x"]},
        {"user_id": "u4", "is_staff": 2},
        {"user_id": "u5", "last_login_at": "2026-01-01T00:00:00Z", "last_login": "2026-01-01T00:00:00Z"},
        {"user_id": 6},
    ]
    users, errors = parse_records(json.dumps(items, indent=2), JSON)
    assert codes(errors) == [
        (2, "invalid-profile"),
        (3, "invalid-record"),
        (4, "duplicate-user-id"),
        (5, "invalid-profile"),
        (6, "invalid-boolean"),
        (7, "invalid-timestamp"),
        (8, "invalid-user-id"),
    ]
    assert users == [User(user_id="u1", is_staff=True, profile={"district": "North", "team": "blue"})]


def test_json_that_is_not_an_array() -> None:
    assert parse_records('{"user_id": "u1"}', JSON) == (
        [],
        [RowError(1, "invalid-json", "expected a JSON array of user objects")],
    )
    users, errors = parse_records('[\n{"user_id": "u1"},\n{oops}\n]', JSON)
    assert users == []
    assert codes(errors) == [(3, "invalid-json")]


def test_json_lines_count_file_lines() -> None:
    text = '{"user_id": "u1", "username": "a"}\n\n{not json\n[1]\n{"user_id": "u2", "username": "a"}\n'
    users, errors = parse_records(text, JSONL)
    assert codes(errors) == [(3, "invalid-json"), (4, "invalid-record"), (5, "duplicate-username")]
    assert errors[2].reason == "username a is repeated (first on line 1)"
    assert [u.user_id for u in users] == ["u1"]


def test_what_users_list_prints_imports_again() -> None:
    listed = {
        "user_id": "u1",
        "username": None,
        "email": "u1@example.org",
        "name": None,
        "organisation": "org1",
        "last_login_at": "2026-01-01T00:00:00+00:00",
        "is_staff": False,
        "profile": {"district": "North"},
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-02T00:00:00+00:00",
    }
    users, errors = parse_records(json.dumps(listed) + "\n", JSONL)
    assert errors == []
    assert users == [
        User(
            user_id="u1",
            email="u1@example.org",
            organisation="org1",
            last_login_at=datetime(2026, 1, 1, tzinfo=UTC),
            profile={"district": "North"},
        )
    ]


def test_text_longer_than_a_column_is_refused() -> None:
    _, errors = parse_records(json.dumps([{"user_id": "u1", "name": "x" * 256}]), JSON)
    assert codes(errors) == [(1, "too-long")]


def test_formats_from_extensions() -> None:
    assert guess_format("users.CSV") is RecordFormat.CSV
    assert guess_format("a/b.json") is RecordFormat.JSON
    assert guess_format("x.jsonl") is guess_format("x.ndjson") is RecordFormat.JSONL
    assert guess_format("users.txt") is None
    assert guess_format("-") is None


def test_timestamps_need_a_zone_and_come_back_in_utc() -> None:
    assert parse_timestamp("2026-01-01T05:30:00+05:30") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_timestamp("2026-01-01T00:00:00Z").tzinfo is UTC
    with pytest.raises(InvalidTimestamp, match="no time zone"):
        parse_timestamp("2026-01-01T00:00:00")
    with pytest.raises(InvalidTimestamp, match="not an ISO 8601"):
        parse_timestamp("tomorrow")


def test_profile_changes() -> None:
    assert check_profile_changes({"a": "1", "b": None}) == {"a": "1", "b": None}
    with pytest.raises(InvalidProfile):
        check_profile_changes({"a": 1})
    with pytest.raises(InvalidProfile):
        check_profile_changes({" ": "x"})
    profile = apply_profile_changes({"b": "2", "c": "3"}, {"a": "1", "b": None, "z": None})
    assert list(profile.items()) == [("a", "1"), ("c", "3")]
    assert profile_diff({"b": "2", "c": "3"}, profile) == {"a": "1", "b": None}
    assert profile_diff(profile, profile) == {}
