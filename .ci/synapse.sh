# Sourced by .ci/run: install_synapse puts Synapse in its own venv (.venv-synapse; its pins
# conflict with mxref's) and exports MXREF_SYNAPSE_PYTHON, the interpreter the interop tests
# and benchmarks start Synapse with. psycopg2-binary lets the benchmarks run Synapse on
# PostgreSQL. An existing install is reused as is.

install_synapse() {
    local venv=${SYNAPSE_VENV:-$ROOT/.venv-synapse}
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import synapse.app.homeserver, psycopg2' >/dev/null 2>&1; then
        log "installing Synapse into $venv"
        "${PYTHON:-python3}" -m venv "$venv" || return 1
        "$venv/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
        "$venv/bin/pip" install -q matrix-synapse psycopg2-binary || return 1
    fi
    export MXREF_SYNAPSE_PYTHON="$venv/bin/python"
    log "Synapse $("$venv/bin/python" -c 'import synapse; print(synapse.__version__)') at $MXREF_SYNAPSE_PYTHON"
}
