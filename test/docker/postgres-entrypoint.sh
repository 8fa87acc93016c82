#!/bin/sh
# Entry point of the PostgreSQL stand-in image (standins.Dockerfile), after the official image's:
# on the first start it creates the cluster with POSTGRES_USER (superuser, password
# POSTGRES_PASSWORD) and the database POSTGRES_DB; then it runs the server as `postgres`.
set -eu
if [ "${1:-}" != postgres ]; then exec "$@"; fi
user=${POSTGRES_USER:-postgres}
database=${POSTGRES_DB:-$user}
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  runuser -u postgres -- initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  # Clients in other containers: password authentication from any address.
  echo 'host all all all scram-sha-256' >>"$PGDATA/pg_hba.conf"
  if [ "$database" != postgres ]; then
    runuser -u postgres -- pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
    runuser -u postgres -- createdb -U "$user" "$database"
    runuser -u postgres -- pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
  fi
  echo "created the cluster: user $user, database $database"
fi
shift
exec runuser -u postgres -- postgres -c listen_addresses="${POSTGRES_LISTEN_ADDRESSES:-*}" "$@"
