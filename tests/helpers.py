"""Small builders shared by the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from courseinfra.bootstrap import App
from courseinfra.domain.hierarchy import COLLECTION_MIME_TYPE
from courseinfra.settings import Settings

COURSE_ID = "do_11305855864948326411234"
TEXTBOOK_ID = "KP_FT_1594149835504"


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


def relayed_by_hand(app: App) -> App:
    """``app`` relays only when told (``app.relay()``), for a
    test that looks between a commit and its relay; otherwise every commit relays what it wrote."""
    app.publication.relay = None
    return app
