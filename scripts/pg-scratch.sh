#!/usr/bin/env bash
# A throw-away PostgreSQL server for tests, benchmarks and trials, in a
# directory of its own (no system cluster is used or changed).
#
#   scripts/pg-scratch.sh start DIR   starts one (initdb on first use) and
#                                     prints its URL on stdout; started again
#                                     after a stop, it keeps its port. Its
#                                     Unix socket is in DIR too (for clients
#                                     in other network namespaces:
#                                     postgres://postgres@localhost:PORT/DB?host=DIR)
#   scripts/pg-scratch.sh stop DIR    stops it
#
# It listens on 127.0.0.1 only, on a free port chosen at start, with trust
# authentication for local connections (a scratch server holds no data worth
# a password). initdb refuses to run as root, so as root the server runs as
# the `postgres` account Debian's package creates. Needs PostgreSQL 13 or
# newer (Debian: apt-get install postgresql-15).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

bindir=""
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && bindir=$d
done
if [ -z "$bindir" ] && command -v pg_ctl >/dev/null; then
    bindir=$(dirname "$(command -v pg_ctl)")
fi
[ -n "$bindir" ] || { echo "$0: no PostgreSQL server found (apt-get install postgresql-15)" >&2; exit 2; }

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data

case "$cmd" in
start)
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { echo "$0: running as root needs the postgres account (apt-get install postgresql-15)" >&2; exit 2; }
        chown postgres "$dir"
        # The server reads its files through every parent directory.
        p=$dir
        while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
    fi
    if [ ! -s "$data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        cat "$dir/url"
        exit 0
    fi
    # A restart keeps its port (writers reconnect to the same URL).
    if [ -s "$dir/url" ]; then
        port=$(sed -E 's#.*:([0-9]+)/.*#\1#' "$dir/url")
    else
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    fi
    as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null \
        || { tail -20 "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres" >"$dir/url"
    cat "$dir/url"
    ;;
stop)
    [ -d "$data" ] && as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
