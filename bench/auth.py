"""Benchmark of what authenticating one API request costs (ADR 0020, ADR 0021).

Run as ``.venv/bin/python bench/auth.py [--calls 5000] [--backends embedded,postgres] [--markdown]``. In
this one process, all in the same run, with ``time.perf_counter``:

- a courseinfra token: ``access.authenticate`` (a reading unit of work, one indexed read by the
  secret's hash), against the same read as a bare ``SELECT`` on one connection (the store's raw limit)
  and against SHA-256 of the secret alone;
- a JWT: ``PyJwtVerifier.claims`` then ``principal_from_claims`` for HS256 and RS256 (a 2048-bit key
  from an inline JWK set), against ``jwt.decode`` with no checks but the signature (PyJWT's own limit).

The embedded store is a SQLite file in a temporary folder; PostgreSQL is the scratch database of
``--database-url`` (``courseinfra_bench``), dropped and created, and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa

from courseinfra.adapters.jwt_tokens import PyJwtVerifier
from courseinfra.adapters.sql.tables import api_tokens
from courseinfra.bootstrap import bootstrap
from courseinfra.domain.access import principal_from_claims, secret_hash
from courseinfra.services import access
from courseinfra.settings import Settings, load_settings
from scratch import drop_database, recreate_database, source_revision

DEFAULT_DATABASE_URL = "postgresql+psycopg://courseinfra:courseinfra@127.0.0.1:5432/courseinfra_bench"
ISSUER, AUDIENCE, SHARED = (
    "https://lms.example/oauth2",
    "courseinfra",
    "a shared key of thirty-two bytes or more",
)


def rate(calls: int, work: Callable[[], object]) -> float:
    """Calls per second of ``work``, best of three rounds (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            work()
        best = min(best, time.perf_counter() - start)
    return calls / best


def measure(settings: Settings, calls: int) -> list[tuple[str, float]]:
    app = bootstrap(settings)
    try:
        for n in range(1000):  # a thousand tokens: the lookup is an index probe, not a scan
            access.create_token(f"bench {n}", "reader", app.uow_factory())
        _, secret = access.create_token("bench", "operator", app.uow_factory())
        connection = app.engine.connect()
        query = sa.select(api_tokens).where(api_tokens.c.secret_hash == sa.bindparam("h"))

        def raw_read() -> object:
            row = connection.execute(query, {"h": secret_hash(secret)}).first()
            connection.rollback()
            return row

        rows = [
            ("token: access.authenticate", rate(calls, lambda: access.authenticate(secret, app.uow_factory))),
            ("token: bare SELECT by hash (store's raw limit)", rate(calls, raw_read)),
        ]
        connection.close()
        return rows
    finally:
        app.close()


def jwt_rows(calls: int) -> list[tuple[str, float]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    keyset = json.dumps({"keys": [{**public, "kid": "k1", "alg": "RS256"}]})
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": datetime.now(UTC) + timedelta(hours=1),
        "scopes": ["courseinfra:operator"],
        "preferred_username": "staff",
    }
    hs_token = jwt.encode(claims, SHARED, algorithm="HS256")
    rs_token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
    hs = PyJwtVerifier(issuer=ISSUER, audience=AUDIENCE, secret=SHARED)
    rs = PyJwtVerifier(issuer=ISSUER, audience=AUDIENCE, public_keys=keyset)
    bare = {"verify_aud": False, "verify_iss": False, "verify_exp": False}
    public_key = key.public_key()
    return [
        ("SHA-256 of a token's secret only", rate(calls, lambda: secret_hash("cit_" + "x" * 43))),
        ("JWT HS256: verify + principal", rate(calls, lambda: principal_from_claims(hs.claims(hs_token)))),
        (
            "JWT HS256: jwt.decode, signature only",
            rate(calls, lambda: jwt.decode(hs_token, SHARED, ["HS256"], options=bare)),
        ),
        ("JWT RS256: verify + principal", rate(calls, lambda: principal_from_claims(rs.claims(rs_token)))),
        (
            "JWT RS256: jwt.decode, signature only",
            rate(calls, lambda: jwt.decode(rs_token, public_key, ["RS256"], options=bare)),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--backends", default="embedded,postgres")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    rows: list[tuple[str, float]] = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory() as home:
            if backend == "postgres":
                recreate_database(args.database_url)
                try:
                    found = measure(
                        load_settings(home=Path(home), database_url=args.database_url), args.calls
                    )
                finally:
                    drop_database(args.database_url)
            else:
                found = measure(load_settings(home=Path(home)), args.calls)
        rows += [(f"{name} ({backend})", value) for name, value in found]
    rows += jwt_rows(args.calls)

    print(
        f"# authentication of one request: {args.calls} calls, best of 3; {platform.python_version()}; {source_revision()}"
    )
    if args.markdown:
        print("| what | calls/s | µs/call |\n| --- | ---: | ---: |")
        for name, value in rows:
            print(f"| {name} | {value:,.0f} | {1e6 / value:,.1f} |")
    else:
        for name, value in rows:
            print(f"{name:60} {value:12,.0f}/s {1e6 / value:10,.1f} µs")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
