#!/usr/bin/env bash
# Benchmark the CSMS against two baselines in one run; see docs/benchmarks.md.
#
#   scripts/bench.sh            # everything, about 10 minutes
#   BENCH_QUICK=1 scripts/bench.sh          # a short smoke run of the script itself
#   BENCH_PROFILE=1 BENCH_ONLY=csms-pg scripts/bench.sh   # py-spy profiles too
#
# Servers: the bare `websockets` baseline, the `ocpp` package's documented
# central system, `csms serve` on a fresh PostgreSQL database with a fresh
# RabbitMQ exchange (with a durable, length-capped queue bound to it, so the
# broker stores what it confirms), and `csms serve` on a fresh SQLite file.
# Each server runs pinned to core 0, the load generator on core 1.
# Everything is on loopback; each run is bounded in time. On exit this script
# ends, by PID, only the processes it started, and drops the database, the
# exchange and the files it made.
#
# Environment: BENCH_OUT (results folder; default a new /tmp/csms-bench.PID),
# BENCH_ONLY (servers, default "bare ocpp csms-pg csms-pg-ext csms-sqlite"; csms-pg-ext is
# csms-pg with CSMS_RELAY=external and a `csms relay` process on the generator's core),
# BENCH_DURATION (s per measurement, 10), BENCH_WARMUP (2), BENCH_STATIONS (1000),
# BENCH_IDLE_STATIONS (19000), BENCH_MIXED_RATE (2000), BENCH_PROFILE (0),
# BENCH_FLEET (1; 0 skips the idle and storm runs), BENCH_MESSAGES (1; 0 skips
# the message workloads), BENCH_WORKLOADS (which of them; default all four), BENCH_RATE (run the
# Heartbeat, MeterValues and TransactionEvent workloads open loop at this many CALLs/s instead of
# as fast as answered: CPU per CALL at a fixed load, steadier for before/after comparisons), BENCH_WAIT_QUIET (15: s to
# wait before each measurement for a machine that other users leave idle), BENCH_REF (the commit whose
# csms/, protocols/ and migrations/ are measured, default HEAD, so that edits in
# progress in the working tree do not leak in; "worktree" measures the working tree).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PY:-.venv/bin/python}
PYSPY=${PYSPY:-.venv/bin/py-spy}
if [[ ! -x $PY ]]; then # a fresh clone: make the environment the benchmark runs in
    python3 -m venv .venv
    .venv/bin/pip install --quiet -e '.[fast,bench]'
fi
QUICK=${BENCH_QUICK:-0}
if ((QUICK)); then
    : "${BENCH_DURATION:=3}" "${BENCH_STATIONS:=200}" "${BENCH_IDLE_STATIONS:=1000}"
fi
OUT=${BENCH_OUT:-/tmp/csms-bench.$$}
ONLY=${BENCH_ONLY:-bare ocpp csms-pg csms-pg-ext csms-sqlite}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
STATIONS=${BENCH_STATIONS:-1000}
IDLE_STATIONS=${BENCH_IDLE_STATIONS:-19000}
MIXED_RATE=${BENCH_MIXED_RATE:-2000}
PROFILE=${BENCH_PROFILE:-0}
FLEET=${BENCH_FLEET:-1}
MESSAGES=${BENCH_MESSAGES:-1}
WORKLOADS=" ${BENCH_WORKLOADS:-heartbeat16 metervalues16 transactionevent201 mixed} "
QUIET=${BENCH_WAIT_QUIET:-15}
SERVER_CPU=0
LOAD_CPU=1
PG_HOST=127.0.0.1
PG_URL="postgresql://postgres@$PG_HOST:5432"
AMQP_URL="amqp://guest:guest@127.0.0.1:5672/"
RUN_ID="$(date +%s)_$$"
DB="csms_bench_$RUN_ID"
EXCHANGE="csms.bench.$RUN_ID"
ID_TAG=LOADGEN1

REF=${BENCH_REF:-HEAD}

mkdir -p "$OUT"
if [[ $REF == worktree ]]; then
    SRC=$PWD
    MEASURED="working tree at $(git rev-parse --short HEAD)"
    git diff --quiet HEAD -- csms protocols migrations || MEASURED+=" + uncommitted changes"
else
    SRC=$OUT/src
    rm -rf "$SRC" && mkdir -p "$SRC"
    git archive "$REF" csms protocols migrations | tar -x -C "$SRC"
    MEASURED="commit $(git rev-parse --short "$REF")"
fi
# -P: the snapshot on PYTHONPATH, not the working tree in the current directory.
CSMS=(env PYTHONPATH="$SRC" "$PY" -P -m csms)
RESULTS="$OUT/results.jsonl"
: >"$RESULTS"
declare -a STARTED=()
SERVER_PID=
DB_CREATED=0
DB_EXT_CREATED=0
EXCHANGE_CREATED=0

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# stop_pid PID: SIGTERM a process this script started, SIGKILL after 15 s.
stop_pid() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
    local kept=()
    for other in "${STARTED[@]}"; do [[ $other == "$pid" ]] || kept+=("$other"); done
    STARTED=("${kept[@]}")
}

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do stop_pid "$pid"; done
    if ((DB_CREATED)); then
        dropdb -h "$PG_HOST" -U postgres --if-exists "$DB" || echo "bench: could not drop $DB" >&2
    fi
    if ((DB_EXT_CREATED)); then
        dropdb -h "$PG_HOST" -U postgres --if-exists "${DB}_ext" || echo "bench: could not drop ${DB}_ext" >&2
    fi
    if ((EXCHANGE_CREATED)); then
        "$PY" scripts/bench/broker.py drop "$EXCHANGE" || echo "bench: could not drop $EXCHANGE" >&2
    fi
    rm -f "$OUT"/csms.db "$OUT"/csms.db-wal "$OUT"/csms.db-shm
    if [[ ${SRC:-} == "$OUT/src" ]]; then rm -rf "$SRC"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME PORT COMMAND...: start COMMAND pinned to the server core,
# wait until PORT accepts connections; its PID is in SERVER_PID.
start_server() {
    local name=$1 port=$2
    shift 2
    taskset -c "$SERVER_CPU" "$@" >>"$OUT/$name.log" 2>&1 &
    SERVER_PID=$!
    STARTED+=("$SERVER_PID")
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "$name exited at start; see $OUT/$name.log"
        sleep 0.1
    done
    die "$name does not listen on $port after 30 s; see $OUT/$name.log"
}

stop_server() {
    stop_pid "$SERVER_PID"
    SERVER_PID=
}

# load LABEL PORT WORKLOAD [loadgen options...]: one measurement.
load() {
    local label=$1 port=$2 workload=$3
    shift 3
    say "$label: $workload $*"
    local spy=
    if ((PROFILE)) && [[ $label == csms* && $workload != idle && $workload != storm ]]; then
        window_file="$OUT/window-$label-$workload"
        rm -f "$window_file"
        set -- --window-file "$window_file" "$@"
        (
            # Sample the measurement window only, not the fleet connecting.
            for _ in $(seq 1200); do [[ -e $window_file ]] && break; sleep 0.1; done
            [[ -e $window_file ]] || exit 0
            taskset -c "$LOAD_CPU" "$PYSPY" record --pid "$SERVER_PID" --format raw --nonblocking \
                --duration "$((DURATION > 2 ? DURATION - 1 : 1))" \
                -o "$OUT/profile-$label-$workload.raw" >"$OUT/py-spy.log" 2>&1 || true
        ) &
        spy=$!
    fi
    taskset -c "$LOAD_CPU" "$PY" scripts/loadgen.py --url "ws://127.0.0.1:$port/ocpp" \
        --workload "$workload" --server-pid "$SERVER_PID" --uvloop --duration "$DURATION" \
        --warmup "$WARMUP" --id-tag "$ID_TAG" --label "$label" --json "$RESULTS" \
        --wait-quiet "$QUIET" "$@" ||
        echo "bench: loadgen exited with $? ($label $workload)"
    if [[ -n $spy ]]; then
        wait "$spy" || true
        "$PY" scripts/bench/pyspy_top.py "$OUT/profile-$label-$workload.raw" --top 30 \
            >"$OUT/profile-$label-$workload.txt" 2>&1 || true
        head -n 25 "$OUT/profile-$label-$workload.txt"
    fi
}

# message_workloads LABEL PORT [loadgen options...]
message_workloads() {
    local label=$1 port=$2
    shift 2
    ((MESSAGES)) || return 0
    # A fleet of STATIONS connecting at once meets the CSMS's handshake cap:
    # refused stations come back after Retry-After, as real ones do.
    set -- --retries 20 --connect-timeout 60 "$@"
    local paced=()
    if [[ -n ${BENCH_RATE:-} ]]; then paced=(--rate "$BENCH_RATE"); fi
    wants() { [[ $WORKLOADS == *" $1 "* ]]; }
    if wants heartbeat16; then
        load "$label" "$port" heartbeat16 "${paced[@]}" --stations "$STATIONS" --id-prefix "HB-" "$@"
    fi
    if wants metervalues16; then
        load "$label" "$port" metervalues16 "${paced[@]}" --stations "$STATIONS" --id-prefix "MV-" "$@"
    fi
    if wants transactionevent201; then
        load "$label" "$port" transactionevent201 "${paced[@]}" --stations "$STATIONS" --id-prefix "TE-" "$@"
    fi
    if wants mixed; then
        load "$label" "$port" mixed --stations "$STATIONS" --ocpp both --rate "$MIXED_RATE" \
            --id-prefix "MX-" "$@"
    fi
}

# fleet LABEL PORT COMMAND...: idle stations on a fresh server, then the same
# stations reconnecting all at once to another fresh one (a restart's storm).
fleet() {
    local label=$1 port=$2
    shift 2
    ((FLEET)) || return 0
    start_server "$label" "$port" "$@"
    load "$label" "$port" idle --stations "$IDLE_STATIONS" --duration 5 --warmup 2 \
        --id-prefix "ID-" --connect-timeout 60 --call-timeout 30 --retries 20 --ocpp both
    stop_server
    start_server "$label" "$port" "$@"
    load "$label" "$port" storm --stations "$IDLE_STATIONS" --duration 1 --warmup 0 \
        --id-prefix "ID-" --connect-timeout 60 --call-timeout 30 --retries 20 --ocpp both
    stop_server
}

# prepare_csms_pg LABEL DATABASE: the exchange and its queue, the CSMS's
# environment on DATABASE, its schema and the generator's id token.
prepare_csms_pg() {
    local label=$1 database=$2
    "$PY" scripts/bench/broker.py sink "$EXCHANGE"
    EXCHANGE_CREATED=1
    export CSMS_DATABASE_URL="$PG_URL/$database" CSMS_AMQP_URL="$AMQP_URL"
    export CSMS_AMQP_EXCHANGE="$EXCHANGE" CSMS_UNKNOWN_STATIONS=accept
    export CSMS_HOST=127.0.0.1 CSMS_PORT=9100 CSMS_HTTP_PORT=9180
    "${CSMS[@]}" migrate >>"$OUT/$label.log" 2>&1
    "${CSMS[@]}" tokens add "$ID_TAG" >>"$OUT/$label.log" 2>&1
}

machine() {
    echo "nproc: $(nproc)"
    lscpu | grep -E '^Model name' || true
    echo "kernel: $(uname -r)"
    echo "python: $("$PY" -V 2>&1)"
    echo "open files: soft $(ulimit -Sn), hard $(ulimit -Hn)"
    "$PY" -m pip list 2>/dev/null |
        grep -iE '^(websockets|ocpp|uvloop|asyncpg|aio-pika|aiormq|orjson|fastjsonschema|jsonschema.rs|structlog|py-spy) ' || true
    psql -h "$PG_HOST" -U postgres -Atc 'SHOW server_version' 2>/dev/null | sed 's/^/postgresql: /' || true
    echo "csms measured: $MEASURED"
}

ulimit -n "$(ulimit -Hn)"
say "machine"
machine | tee "$OUT/machine.txt"
echo "busiest processes before the run (anything but postgres/rabbitmq here is noise):"
top -b -n 1 -o %CPU -w 160 | sed -n '7,12p' | tee -a "$OUT/machine.txt"
started=$SECONDS

for server in $ONLY; do
    case $server in
    bare)
        cmd=("$PY" scripts/bench/bare_baseline.py --port 9101)
        start_server bare 9101 "${cmd[@]}"
        message_workloads bare 9101
        stop_server
        fleet bare 9101 "${cmd[@]}"
        if ((FLEET)); then # the same storm with a listen backlog that fits it
            start_server bare-backlog 9101 "${cmd[@]}" --backlog 4096
            load bare-backlog 9101 storm --stations "$IDLE_STATIONS" --duration 1 --warmup 0 \
                --id-prefix "ID-" --connect-timeout 60 --call-timeout 30 --retries 20 --ocpp both
            stop_server
        fi
        ;;
    ocpp)
        cmd=("$PY" scripts/bench/ocpp_baseline.py --port 9102)
        start_server ocpp 9102 "${cmd[@]}"
        message_workloads ocpp 9102
        stop_server
        fleet ocpp 9102 "${cmd[@]}"
        ;;
    csms-pg)
        createdb -h "$PG_HOST" -U postgres "$DB"
        DB_CREATED=1
        prepare_csms_pg csms-pg "$DB"
        start_server csms-pg 9100 "${CSMS[@]}" serve
        message_workloads csms-pg 9100 --outbox-dsn "$CSMS_DATABASE_URL" \
            --metrics-url http://127.0.0.1:9180/metrics
        stop_server
        fleet csms-pg 9100 "${CSMS[@]}" serve
        unset CSMS_DATABASE_URL CSMS_AMQP_URL CSMS_AMQP_EXCHANGE
        ;;
    csms-pg-ext)
        # The same, with the outbox published by a `csms relay` process on the
        # generator's core (CSMS_RELAY=external), not by the stations' process.
        createdb -h "$PG_HOST" -U postgres "${DB}_ext"
        DB_EXT_CREATED=1
        prepare_csms_pg csms-pg-ext "${DB}_ext"
        CSMS_HTTP_PORT=9181 taskset -c "$LOAD_CPU" "${CSMS[@]}" relay >>"$OUT/relay.log" 2>&1 &
        RELAY_PID=$!
        STARTED+=("$RELAY_PID")
        CSMS_RELAY=external start_server csms-pg-ext 9100 "${CSMS[@]}" serve
        message_workloads csms-pg-ext 9100 --outbox-dsn "$CSMS_DATABASE_URL" \
            --relay-pid "$RELAY_PID" --metrics-url http://127.0.0.1:9180/metrics
        stop_server
        stop_pid "$RELAY_PID"
        unset CSMS_DATABASE_URL CSMS_AMQP_URL CSMS_AMQP_EXCHANGE
        ;;
    csms-sqlite)
        export CSMS_DATABASE_URL="sqlite:///$OUT/csms.db" CSMS_UNKNOWN_STATIONS=accept
        export CSMS_HOST=127.0.0.1 CSMS_PORT=9110 CSMS_HTTP_PORT=9190
        unset CSMS_AMQP_URL
        "${CSMS[@]}" migrate >>"$OUT/csms-sqlite.log" 2>&1
        "${CSMS[@]}" tokens add "$ID_TAG" >>"$OUT/csms-sqlite.log" 2>&1
        start_server csms-sqlite 9110 "${CSMS[@]}" serve
        load csms-sqlite 9110 metervalues16 --stations "$STATIONS" --id-prefix "MV-" \
            --retries 20 --connect-timeout 60
        load csms-sqlite 9110 heartbeat16 --stations "$STATIONS" --id-prefix "HB-" \
            --retries 20 --connect-timeout 60
        stop_server
        unset CSMS_DATABASE_URL
        ;;
    *) die "unknown server $server (bare, ocpp, csms-pg, csms-pg-ext, csms-sqlite)" ;;
    esac
done

say "results ($((SECONDS - started)) s; raw reports in $RESULTS)"
"$PY" scripts/bench/table.py "$RESULTS" | tee "$OUT/table.md"
