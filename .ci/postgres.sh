#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: loopback only, in a temp dir, gone after.
#
# Sourced (what .ci/run does):
#     . .ci/postgres.sh
#     autometa_pg_start || true    # exports AUTOMETA_TEST_POSTGRES_URL on success
#     trap autometa_pg_stop EXIT
# Run (by hand):
#     eval "$(bash .ci/postgres.sh start)"   # prints export lines: the URL and the server's dir
#     bash .ci/postgres.sh stop              # reads AUTOMETA_PG_DIR
#
# PostgreSQL refuses to run as root, and CI runs as root: initdb and pg_ctl run
# as an unprivileged user through runuser (util-linux, on every Debian): the
# `postgres` account that Debian's server package creates, else `nobody`. The
# data directory, owned by that user, lives in a fresh temp dir; the server
# listens on 127.0.0.1 at a free port (5433 when free) and on a Unix socket in
# that dir only, with trust authentication for user `autometa`: nothing
# outside this machine can reach it. Settings: fsync off (a test server that
# dies is thrown away anyway); set AUTOMETA_PG_DURABLE=1 to keep fsync on,
# e.g. for throughput numbers. Nothing is installed: when the binaries or the
# user are missing, start fails with a message and the tests that need the
# server skip.

AUTOMETA_PG_BIN=${AUTOMETA_PG_BIN:-}
AUTOMETA_PG_DB=${AUTOMETA_PG_DB:-autometa_test}

_autometa_pg_log() { echo "postgres.sh: $*" >&2; }

_autometa_pg_bindir() {
    local dir
    for dir in "$AUTOMETA_PG_BIN" /usr/local/bin /usr/lib/postgresql/*/bin; do
        if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    command -v initdb >/dev/null 2>&1 && dirname "$(command -v initdb)" && return 0
    return 1
}

_autometa_pg_psql() {
    local candidate
    for candidate in "$1/psql" /usr/lib/postgresql/*/bin/psql "$(command -v psql)"; do
        [ -x "$candidate" ] && { echo "$candidate"; return 0; }
    done
    return 1
}

_autometa_pg_free_port() {
    python3 - <<'EOF'
import socket
for port in (5433, 0):
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
            print(s.getsockname()[1])
            break
    except OSError:
        continue
EOF
}

# Run a command as the unprivileged user (as ourselves when not root).
_autometa_pg_as() {
    if [ "$(id -u)" != 0 ]; then
        "$@"
    else
        runuser -u "$AUTOMETA_PG_USER" -- "$@"
    fi
}

autometa_pg_start() {
    local bindir port dir options
    bindir=$(_autometa_pg_bindir) || { _autometa_pg_log "no initdb/pg_ctl found (set AUTOMETA_PG_BIN)"; return 1; }
    if [ "$(id -u)" = 0 ]; then
        if id -u postgres >/dev/null 2>&1; then
            AUTOMETA_PG_USER=postgres
        elif id -u nobody >/dev/null 2>&1; then
            AUTOMETA_PG_USER=nobody
        else
            _autometa_pg_log "running as root and no 'postgres' or 'nobody' user to run the server as"
            return 1
        fi
        command -v runuser >/dev/null 2>&1 || { _autometa_pg_log "running as root and no runuser"; return 1; }
    fi
    port=$(_autometa_pg_free_port) || { _autometa_pg_log "no free port"; return 1; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/autometa-pg.XXXXXX") || return 1
    chmod 700 "$dir"
    [ "$(id -u)" = 0 ] && chown "$AUTOMETA_PG_USER": "$dir"
    options="-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200"
    [ "${AUTOMETA_PG_DURABLE:-0}" = 1 ] || options="$options -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    # cd: the unprivileged user may not be allowed into our working directory
    if ! (cd "$dir" && _autometa_pg_as "$bindir/initdb" -D "$dir/data" -U autometa --auth=trust -E UTF8 --no-sync \
            >"$dir/initdb.log" 2>&1); then
        _autometa_pg_log "initdb failed:"; tail -n 20 "$dir/initdb.log" >&2
        rm -rf "$dir"; return 1
    fi
    if ! (cd "$dir" && _autometa_pg_as "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$options" start \
            >/dev/null 2>&1); then
        _autometa_pg_log "the server did not start:"; tail -n 20 "$dir/server.log" >&2
        rm -rf "$dir"; return 1
    fi
    export AUTOMETA_PG_DIR=$dir AUTOMETA_PG_BINDIR=$bindir AUTOMETA_PG_USER
    local psql
    psql=$(_autometa_pg_psql "$bindir") || { _autometa_pg_log "no psql found"; autometa_pg_stop; return 1; }
    if ! (cd "$dir" && "$psql" -X -q -h 127.0.0.1 -p "$port" -U autometa -d postgres \
            -c "CREATE DATABASE $AUTOMETA_PG_DB" >/dev/null); then
        _autometa_pg_log "could not create database $AUTOMETA_PG_DB"
        autometa_pg_stop; return 1
    fi
    export AUTOMETA_TEST_POSTGRES_URL="postgresql+psycopg2://autometa@127.0.0.1:$port/$AUTOMETA_PG_DB"
    _autometa_pg_log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $AUTOMETA_TEST_POSTGRES_URL (dir $dir, user ${AUTOMETA_PG_USER:-$(id -un)})"
    return 0
}

autometa_pg_stop() {
    local dir=${AUTOMETA_PG_DIR:-}
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    local bindir=${AUTOMETA_PG_BINDIR:-$(_autometa_pg_bindir)}
    AUTOMETA_PG_USER=${AUTOMETA_PG_USER:-$(stat -c %U "$dir")}
    (cd "$dir" && _autometa_pg_as "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1) \
        || _autometa_pg_log "pg_ctl stop failed; see $dir/server.log"
    rm -rf "$dir"
    unset AUTOMETA_PG_DIR AUTOMETA_TEST_POSTGRES_URL
    return 0
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
        start)
            autometa_pg_start || exit 1
            echo "export AUTOMETA_TEST_POSTGRES_URL='$AUTOMETA_TEST_POSTGRES_URL'"
            echo "export AUTOMETA_PG_DIR='$AUTOMETA_PG_DIR'"
            ;;
        stop) autometa_pg_stop ;;
        *) echo "usage: $0 start|stop" >&2; exit 2 ;;
    esac
fi
