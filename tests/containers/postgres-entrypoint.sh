#!/bin/sh
# First start: a cluster in $PGDATA owned by $POSTGRES_USER (password auth over TCP) with the database
# $POSTGRES_DB, as the official image makes it; then the server, in the foreground.
set -eu
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password"
    "$bin/initdb" --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$password" \
        --auth-local=trust --auth-host=scram-sha-256 > /dev/null
    rm -f "$password"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait --options="-c listen_addresses=''" start > /dev/null
    if [ "$POSTGRES_DB" != "postgres" ]; then
        "$bin/createdb" --username="$POSTGRES_USER" "$POSTGRES_DB"
    fi
    "$bin/pg_ctl" --pgdata="$PGDATA" --wait stop > /dev/null
fi
exec "$bin/postgres" -D "$PGDATA" -c listen_addresses='*'
