"""The schema. Alembic migrations in ``migrations/`` create it; this module is their reference."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JsonDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UtcTimestamp(sa.types.TypeDecorator[datetime]):
    """A point in time, stored in UTC and read back aware. PostgreSQL keeps the instant of any zone;
    SQLite keeps the text of the wall clock without its zone, so a time of another zone is converted to
    UTC before it is written (and compared), and a time read back is UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value if isinstance(value, datetime) or value is None else None


Timestamp = UtcTimestamp()

content_hierarchy = sa.Table(
    "content_hierarchy",
    metadata,
    sa.Column("identifier", sa.String(255), primary_key=True),
    sa.Column("mime_type", sa.String(255), nullable=False),
    sa.Column("hierarchy", JsonDocument, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("published_at", Timestamp, nullable=True),
    sa.Column("channel", sa.String(255), nullable=True),
    sa.Column("framework", sa.String(255), nullable=True),
)

failed_events = sa.Table(
    "failed_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    # Hex SHA-256 of the payload's UTF-8 text: what identifies a kept event within its job.
    sa.Column("payload_digest", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("last_attempt_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp, nullable=True),
    sa.Index("ix_failed_events_open", "outcome", "resolved_at", "id"),
    sa.Index("ix_failed_events_job", "job", "id"),
    # One open entry per bad event of a job: keeping it again counts an attempt on that entry. A
    # resolved entry is out of the index, so the same payload failing after it opens a new one.
    sa.Index(
        "ix_failed_events_open_payload",
        "job",
        "payload_digest",
        unique=True,
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    ),
)

job_counters = sa.Table(
    "job_counters",
    metadata,
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("counter", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# Snapshots of job_counters (ADR 0025): at most one per bucket of COURSEINFRA_COUNTER_SAMPLE_SECONDS,
# taken by whichever process counted first in it, pruned after COURSEINFRA_COUNTER_SAMPLE_RETENTION_HOURS;
# what "events per second over time" is computed from.
job_counter_samples = sa.Table(
    "job_counter_samples",
    metadata,
    sa.Column("bucket", Timestamp, primary_key=True),
    sa.Column("job", sa.String(64), primary_key=True),
    sa.Column("counter", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("taken_at", Timestamp, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("payload", JsonDocument, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("relayed_at", Timestamp, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_outbox_pending", "relayed_at", "id"),
)

course_batch = sa.Table(
    "course_batch",
    metadata,
    sa.Column("batchid", sa.String(255), primary_key=True),
    sa.Column("courseid", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("startdate", sa.Date, nullable=True),
    sa.Column("enddate", sa.Date, nullable=True),
    sa.Column("enrollmentenddate", sa.Date, nullable=True),
    sa.Column("enrollmenttype", sa.String(32), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("createdfor", sa.JSON, nullable=False),
    sa.Column("mentors", sa.JSON, nullable=False),
    sa.Column("createdby", sa.String(255), nullable=True),
    sa.Column("createddate", Timestamp, nullable=False),
    sa.Index("ix_course_batch_course", "courseid", "batchid"),
)

# Keyed (userid, courseid, batchid): a user's enrolments are a primary-key prefix scan; a batch's
# participants use ix_user_enrolments_batch. No search index is needed for either.
user_enrolments = sa.Table(
    "user_enrolments",
    metadata,
    sa.Column("userid", sa.String(255), primary_key=True),
    sa.Column("courseid", sa.String(255), primary_key=True),
    sa.Column("batchid", sa.String(255), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("addedby", sa.String(255), nullable=True),
    sa.Column("enrolleddate", Timestamp, nullable=False),
    sa.Column("datetime", Timestamp, nullable=False),
    sa.Column("contentstatus", JsonDocument, nullable=False),
    sa.Column("lastreadcontentid", sa.String(255), nullable=True),
    sa.Column("lastreadcontentstatus", sa.Integer, nullable=True),
    sa.Column("progress", sa.Integer, nullable=False),
    sa.Column("completionpercentage", sa.Integer, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("completedon", Timestamp, nullable=True),
    sa.Column("certificates", sa.JSON, nullable=False),
    # The enrolment's mode (track): audit, verified, professional, ... (Open edX's enrollment mode).
    sa.Column("mode", sa.String(32), nullable=False, server_default="audit"),
    # The units whose AUDIT start / complete was emitted ({"started": [...], "completed": [...]}): what
    # keeps a unit that a republication reopened from being emitted twice (ADR 0018).
    sa.Column("auditmarks", sa.JSON, nullable=False, server_default="{}"),
    # Content id to [first started, first completed] in epoch milliseconds (ADR 0010: reports of a past
    # date); a status without a stamp predates them and counts as reached at `datetime`.
    sa.Column("statustimes", JsonDocument, nullable=False, server_default="{}"),
    # When the learner left the batch (null while active; the first time, if they left twice).
    sa.Column("unenrolledon", Timestamp, nullable=True),
    sa.Index("ix_user_enrolments_batch", "batchid", "userid"),
    # A batch's progress counted from the index alone (EnrolmentStore.batch_progress, the console), on
    # SQLite only: there it costs the aggregator nothing measurable and takes the batch page from 714 to
    # 56 ms; on PostgreSQL the page needs no index (57 ms) and one holding the progress columns made
    # every progress write a non-HOT update, the aggregator 17% slower (ADR 0027).
    sa.Index(
        "ix_user_enrolments_batch_progress",
        "batchid",
        "active",
        "status",
        "completionpercentage",
        "completedon",
        info={"dialects": {"sqlite"}},
    ),
)

user_activity_agg = sa.Table(
    "user_activity_agg",
    metadata,
    sa.Column("activity_type", sa.String(32), primary_key=True),
    sa.Column("activity_id", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("context_id", sa.String(255), primary_key=True),
    sa.Column("agg", sa.JSON, nullable=False),
    sa.Column("agg_last_updated", sa.JSON, nullable=False),
    sa.Index("ix_user_activity_agg_user", "user_id", "context_id"),
    # Clustered on the seed's key, as Cassandra keeps it: a row is found and rewritten in one B-tree.
    sqlite_with_rowid=False,
)

# The AUDIT log: the AUDIT events of one transaction and one course in one row (a page), appended in
# the transaction of the state transitions that emit them (ADR 0018). ``entries`` is a JSON array of
# [userid, batchid, object_type, object_id, action]; an entry's id is (page id << 20) + its index.
# It is also the AUDIT outbox: page ids are assigned in commit order (see SqlAuditLog.append) and the
# relay keeps a cursor in relay_cursors. Relayed pages are pruned after the retention window.
audit_pages = sa.Table(
    "audit_pages",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("courseid", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(255), nullable=True),
    sa.Column("emitted_at", Timestamp, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("entries", sa.LargeBinary, nullable=False),
    sa.Index("ix_audit_pages_course", "courseid", "id"),
    # Never reuse an id (SQLite's default is max + 1): the relay's cursor must stay behind every new row.
    sqlite_autoincrement=True,
)

relay_cursors = sa.Table(
    "relay_cursors",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=True),
)

# The user directory, shared by course reports and user groups. ``profile`` is a JSON document of free
# string fields (JSONB on PostgreSQL, so that groups can match on it with ``@>``); the other columns are
# the ones reports filter and sort on, each indexed. A NULL username is not unique-checked.
users = sa.Table(
    "users",
    metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("username", sa.String(255), nullable=True),
    sa.Column("email", sa.String(255), nullable=True),
    sa.Column("name", sa.String(255), nullable=True),
    sa.Column("organisation", sa.String(255), nullable=True),
    sa.Column("last_login_at", Timestamp, nullable=True),
    sa.Column("is_staff", sa.Boolean, nullable=False),
    sa.Column("profile", JsonDocument, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Index("ix_users_username", "username", unique=True),
    sa.Index("ix_users_email", "email"),
    sa.Index("ix_users_organisation", "organisation", "user_id"),
    sa.Index("ix_users_last_login_at", "last_login_at"),
)

# One row per report generation, so that the CLI's and the API's runs are visible to both.
report_runs = sa.Table(
    "report_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("requested_batches", sa.JSON, nullable=False),
    sa.Column("batches_total", sa.Integer, nullable=False),
    sa.Column("batches_done", sa.Integer, nullable=False),
    sa.Column("rows_written", sa.BigInteger, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("outcome", sa.JSON, nullable=False),
    sa.Index("ix_report_runs_started", "started_at"),
)

# User groups: the definition, manual overrides, current members and the history of joins and leaves.
user_groups = sa.Table(
    "user_groups",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("scope", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("frozen", sa.Boolean, nullable=False),
    sa.Column("criteria", sa.JSON, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("member_count", sa.Integer, nullable=False),
    sa.Column("last_refreshed_at", Timestamp, nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.UniqueConstraint("scope", "name", name="uq_user_groups_scope_name"),
)

user_group_overrides = sa.Table(
    "user_group_overrides",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
)

user_group_members = sa.Table(
    "user_group_members",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("joined_at", Timestamp, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Index("ix_user_group_members_user", "user_id"),
)

user_group_history = sa.Table(
    "user_group_history",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("change", sa.String(8), nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Index("ix_user_group_history_group", "group_id", "id"),
    sa.Index("ix_user_group_history_user", "group_id", "user_id", "id"),
)

# Legacy groups kept locally (adapters/legacy/local.py), with the rules of Open edX's cohorts, teams
# and enrollment tracks. The membership rules are keys, so that they hold whatever runs concurrently:
# a user's cohort in a course is the primary key of legacy_cohort_members, a user's team in a teamset
# the unique key of legacy_team_members (which repeats the team's course and teamset for it).
legacy_cohorts = sa.Table(
    "legacy_cohorts",
    metadata,
    sa.Column("cohort_id", sa.String(64), primary_key=True),
    sa.Column("course_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("assignment_type", sa.String(16), nullable=False),
    sa.UniqueConstraint("course_id", "name", name="uq_legacy_cohorts_course_name"),
)

legacy_cohort_members = sa.Table(
    "legacy_cohort_members",
    metadata,
    sa.Column("course_id", sa.String(255), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("cohort_id", sa.String(64), nullable=False),
    sa.Index("ix_legacy_cohort_members_cohort", "cohort_id", "user_id"),
)

legacy_teamsets = sa.Table(
    "legacy_teamsets",
    metadata,
    sa.Column("course_id", sa.String(255), primary_key=True),
    sa.Column("teamset_id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("max_team_size", sa.Integer, nullable=False),
)

legacy_teams = sa.Table(
    "legacy_teams",
    metadata,
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("course_id", sa.String(255), nullable=False),
    sa.Column("teamset_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Index("ix_legacy_teams_teamset", "course_id", "teamset_id"),
)

legacy_team_members = sa.Table(
    "legacy_team_members",
    metadata,
    sa.Column("team_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("course_id", sa.String(255), nullable=False),
    sa.Column("teamset_id", sa.String(255), nullable=False),
    sa.UniqueConstraint("course_id", "teamset_id", "user_id", name="uq_legacy_team_members_teamset_user"),
)

legacy_course_modes = sa.Table(
    "legacy_course_modes",
    metadata,
    sa.Column("course_id", sa.String(255), primary_key=True),
    sa.Column("mode", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
)

# Linked-group operations that failed on the legacy side, with what could not be undone.
legacy_sync_failures = sa.Table(
    "legacy_sync_failures",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("group_id", sa.String(64), nullable=False),
    sa.Column("operation", sa.String(32), nullable=False),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("not_undone", sa.JSON, nullable=False),
)

# The open drift of links whose user group is the authority (ADR 0022): a user an Open edX event showed
# to be on one side only, until reconciliation pushes the user group's membership.
legacy_drift = sa.Table(
    "legacy_drift",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("side", sa.String(32), nullable=False),
    sa.Column("detected_at", Timestamp, nullable=False),
    sa.Column("origin", sa.String(255), nullable=False),
)

# The echoes expected of courseinfra's own legacy writes (ADR 0022): the legacy state a write made for a
# user of a linked group, so that the Open edX event it causes needs no legacy read, until it expires.
legacy_echoes = sa.Table(
    "legacy_echoes",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("member", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(255), nullable=True),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Index("ix_legacy_echoes_expires_at", "expires_at"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("pii", sa.Boolean, nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
    sa.Column("scope", sa.String(300), nullable=True),
)

# Who changed what (groups, members, users, content, replays, tokens), written by the change's own
# transaction.
change_trail = sa.Table(
    "change_trail",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("via", sa.String(16), nullable=False),
    sa.Column("origin", sa.String(255), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Index("ix_change_trail_target", "target"),
)

# The Open edX events applied, by their envelope id (ADR 0022): a redelivery or a replay is a no-op.
openedx_events_applied = sa.Table(
    "openedx_events_applied",
    metadata,
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("applied_at", Timestamp, nullable=False),
    sa.Index("ix_openedx_events_applied_at", "applied_at"),
)


def schema_objects_of(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` comparing :data:`metadata` with a database of ``dialect``: an index
    declared for some dialects only (``info={"dialects": {...}}``) is left out elsewhere, as its
    migration builds it only there."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        dialects = getattr(obj, "info", {}).get("dialects") if not reflected else None
        return not (type_ == "index" and dialects and dialect not in dialects)

    return include
