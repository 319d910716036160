#!/usr/bin/env bash
# Make sure PostgreSQL and Redis listen on 127.0.0.1 (5432, 6379) and that the test role exists.
# Installs the Debian packages where they are missing and starts the servers where they are not running;
# fails loudly (never skips) if either cannot be reached afterwards.
set -euo pipefail

PG_PORT=5432
REDIS_PORT=6379
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
say() { echo "ensure-services: $*" >&2; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

pg_up() { pg_isready -h 127.0.0.1 -p "$PG_PORT" -q 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

if ! pg_up; then
  say "starting PostgreSQL"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 60); do pg_up && break; sleep 0.5; done
fi
if ! redis_up; then
  say "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/courseinfra.log
  for _ in $(seq 60); do redis_up && break; sleep 0.5; done
fi
pg_up || { say "PostgreSQL is not answering on 127.0.0.1:$PG_PORT"; exit 1; }
redis_up || { say "Redis is not answering on 127.0.0.1:$REDIS_PORT"; exit 1; }

# The test role logs in with a password over TCP, which works under Debian's default (scram) and trust alike.
psql_admin() { as_root runuser -u postgres -- psql -p "$PG_PORT" -v ON_ERROR_STOP=1 -qtA "$@"; }
if [ "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = 'courseinfra'")" != "1" ]; then
  say "creating the PostgreSQL role courseinfra"
  psql_admin -c "CREATE ROLE courseinfra LOGIN PASSWORD 'courseinfra' CREATEDB"
fi
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'courseinfra'")" != "1" ]; then
  psql_admin -c "CREATE DATABASE courseinfra OWNER courseinfra"
fi
say "PostgreSQL and Redis are up"
