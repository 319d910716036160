"""The REST API: the CLI's operations over HTTP, one router per feature, with Prometheus metrics and a
health check.

Routes are thin: each reads its input, calls the feature's use case and answers JSON. Every error is
``{"error": {"code", "message"}}``; ``code`` is stable (a :class:`DomainError`'s code for the domain's
errors) and the status follows the error's kind. Routes are synchronous because the adapters are:
FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from courseinfra.entrypoints.api.app import create_app
from courseinfra.entrypoints.api.deps import app_of

__all__ = ["app_of", "create_app"]
