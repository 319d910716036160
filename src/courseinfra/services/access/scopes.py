"""What a principal scoped to courses or organisations reaches, resolved against the stores: the
course of a batch, the organisation (``channel``) of a course, the scope of a user group.

An unscoped principal (every role but ``course_staff``) reaches everything and costs no read."""

from __future__ import annotations

from collections.abc import Iterable

from courseinfra.domain.access import Forbidden, Principal
from courseinfra.services.unit_of_work import UowFactory


class Reach:
    """One request's view of what its principal reaches; reads are cached for the request."""

    def __init__(self, principal: Principal, uow_factory: UowFactory) -> None:
        self.principal = principal
        self.uow_factory = uow_factory
        self._organisations: dict[str, str | None] = {}

    def organisation_of(self, course_id: str) -> str | None:
        """The organisation that owns a course (its hierarchy's ``channel``); None if unknown."""
        self._learn([course_id])
        return self._organisations[course_id]

    def _learn(self, course_ids: Iterable[str]) -> None:
        unknown = sorted({c for c in course_ids if c not in self._organisations})
        if not unknown:
            return
        with self.uow_factory().reading() as uow:
            summaries = uow.hierarchies.summaries(unknown)
        for course_id in unknown:
            summary = summaries.get(course_id)
            self._organisations[course_id] = None if summary is None else summary.channel

    def course(self, course_id: str) -> bool:
        if not self.principal.scoped:
            return True
        return self.principal.reaches(course_id, self.organisation_of(course_id))

    def courses(self, course_ids: Iterable[str]) -> set[str]:
        """Those of ``course_ids`` the principal reaches (one read for all)."""
        ids = set(course_ids)
        if not self.principal.scoped:
            return ids
        self._learn(ids)
        return {c for c in ids if self.principal.reaches(c, self._organisations[c])}

    def require_course(self, course_id: str) -> None:
        """:class:`Forbidden` unless the principal reaches the course."""
        if not self.course(course_id):
            raise Forbidden(
                f"the token's scopes ({self.principal.scope_text}) do not reach the course {course_id}"
            )

    def require_batch(self, batch_id: str) -> None:
        """:class:`Forbidden` unless the principal reaches the batch's course. An unknown batch passes:
        the route answers 404 for it as for anyone."""
        if not self.principal.scoped:
            return
        with self.uow_factory().reading() as uow:
            batch = uow.batches.get(batch_id)
        if batch is not None:
            self.require_course(batch.course_id)

    def group_scope(self, scope: str) -> bool:
        """Whether a user group's scope text is within the principal's reach."""
        return self.principal.reaches_group_scope(scope, self.organisation_of)

    def require_group_scope(self, scope: str) -> None:
        if not self.group_scope(scope):
            raise Forbidden(
                f"the token's scopes ({self.principal.scope_text}) do not reach the scope {scope}"
            )

    def require_group(self, group_id: str) -> None:
        """:class:`Forbidden` unless the principal reaches the group's scope; an unknown group passes
        (the route answers 404)."""
        if not self.principal.scoped:
            return
        with self.uow_factory().reading() as uow:
            group = uow.groups.get(group_id)
        if group is not None:
            self.require_group_scope(str(group.scope))
