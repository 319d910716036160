"""Every domain error declares what kind of failure it is; the API answers the kind's status."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest

import courseinfra
from courseinfra.domain.errors import DomainError, ErrorKind
from courseinfra.entrypoints.api.errors import STATUS_OF_KIND, status_of


def every_error_class() -> list[type[DomainError]]:
    for module in pkgutil.walk_packages(courseinfra.__path__, "courseinfra."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    def below(cls: type[DomainError]) -> Iterator[type[DomainError]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return sorted(set(below(DomainError)), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


ERRORS = every_error_class()


def test_every_kind_has_a_status() -> None:
    assert set(STATUS_OF_KIND) == set(ErrorKind)


@pytest.mark.parametrize("error", ERRORS, ids=lambda cls: cls.__qualname__)
def test_a_code_that_says_what_failed_has_the_matching_kind(error: type[DomainError]) -> None:
    expected = {
        "-not-found": ErrorKind.NOT_FOUND,
        "-exists": ErrorKind.CONFLICT,
        "-unavailable": ErrorKind.UPSTREAM,
    }
    for suffix, kind in expected.items():
        if error.code.endswith(suffix):
            assert error.kind is kind, f"{error.__qualname__} ({error.code}) is {error.kind}, not {kind}"
    if error.code.startswith("invalid-"):
        assert error.kind in (ErrorKind.INVALID, ErrorKind.MALFORMED)


def test_an_instance_may_say_another_kind_than_its_class() -> None:
    plain = DomainError("no such course", code="course-not-found")
    translated = DomainError("no such course", code="course-not-found", kind=ErrorKind.NOT_FOUND)
    assert (status_of(plain), status_of(translated)) == (422, 404)


def test_the_classes_are_found() -> None:
    assert len(ERRORS) > 40
