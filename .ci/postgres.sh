# Sourced by .ci/run: start_postgres / stop_postgres for a throwaway PostgreSQL cluster.
# initdb and postgres refuse to run as root, so as root they run as the postgres OS user.

_pg_bindir() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

start_postgres() {
    local bindir
    if ! bindir=$(_pg_bindir); then
        log "installing PostgreSQL from Debian"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || return 1
        bindir=$(_pg_bindir) || return 1
    fi
    PG_DIR=$(mktemp -d /tmp/mxref-pg.XXXXXX)
    PG_PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    local as_pg=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$PG_DIR"
        as_pg=(runuser -u postgres --)
    fi
    PG_RUN=("${as_pg[@]}")
    "${as_pg[@]}" "$bindir/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null || return 1
    # fsync=off only speeds up this throwaway cluster: the durability tests kill the
    # writing client, not the server, so what they check is commit-before-acknowledge.
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || return 1
    PG_BINDIR=$bindir
    export MXREF_TEST_POSTGRES="host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres"
    log "PostgreSQL on 127.0.0.1:$PG_PORT ($PG_DIR)"
}

stop_postgres() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        "${PG_RUN[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
