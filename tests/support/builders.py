"""Builders of what the tests feed the system: hierarchies, job requests, progress events, directory
users."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from courseinfra.bootstrap import App
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.domain.users import User
from courseinfra.services.course_metrics import JOB_NAME, CourseMetricsJob

COURSE_ID = "do_11305855864948326411234"
TEXTBOOK_ID = "KP_FT_1594149835504"
#: When :func:`directory_users` puts users in the directory by default.
DIRECTORY_AT = datetime(2026, 1, 1, tzinfo=UTC)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def collection(
    identifier: str, *children: dict[str, Any], visibility: str = "Parent", **extra: Any
) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "mimeType": COLLECTION_MIME_TYPE,
        "visibility": visibility,
        "children": list(children),
        **extra,
    }


def leaf(identifier: str, *, optional: bool = False, mime_type: str = "application/pdf") -> dict[str, Any]:
    node: dict[str, Any] = {"identifier": identifier, "mimeType": mime_type, "visibility": "Default"}
    if optional:
        node["relationalMetadata"] = {"optional": True}
    return node


def post_publish_event(
    identifier: str, mime_type: str = COLLECTION_MIME_TYPE, action: str = "post-publish-process"
) -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "edata": {"action": action, "identifier": identifier, "mimeType": mime_type},
        }
    )


def relayed_by_hand(app: App) -> App:
    """``app`` relays only when told (``app.relay()``), for a
    test that looks between a commit and its relay; otherwise every commit relays what it wrote."""
    app.publication.relay = None
    return app


@contextmanager
def aggregator_clock(app: App, moment: datetime) -> Iterator[None]:
    """Within the block, ``app``'s aggregator applies progress as if at ``moment`` (its ``clock``): what
    a test of a report of a past date needs to make progress on given days."""
    job = next(job for job in app.router.jobs if job.name == JOB_NAME)
    assert isinstance(job, CourseMetricsJob)
    original = job.clock
    job.clock = lambda: moment
    try:
        yield
    finally:
        job.clock = original


def directory_users(app: App, *user_ids: str, at: datetime = DIRECTORY_AT) -> None:
    """Put the users of ``user_ids`` that ``app``'s user directory lacks in it, with nothing else known
    of them (users it has are left as they are): what a group naming them (include, exclude, members)
    needs, since a group refuses users the directory does not have."""
    with app.uow_factory() as uow:
        missing = sorted(set(user_ids) - set(uow.users.get_many(list(user_ids))))
        uow.users.upsert_many([User(user_id) for user_id in missing], at)
        uow.commit()


def progress_event(user: str, *contents: tuple[str, int], course: str = "course", batch: str = "b1") -> str:
    return json.dumps(
        {
            "eid": "BE_JOB_REQUEST",
            "edata": {
                "action": "batch-enrolment-update",
                "userId": user,
                "courseId": course,
                "batchId": batch,
                "contents": [{"contentId": c, "status": s} for c, s in contents],
            },
        }
    )
