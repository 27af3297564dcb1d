#!/usr/bin/env bash
# The telnet honeypot beside Cowrie (issue 18): how many whole Mirai-style bot
# sessions a second each serves, and how much memory each session held open at
# the shell prompt costs. Same driver (bench/honeypot_bot.py), same machine,
# same run, one server after the other, loopback only.
#
#   bash bench/honeypot.sh [SESSIONS] [CONCURRENCY] [HELD]     (defaults 2000 50 500)
#
# A session logs in as root/xc3511 and sends a scanner's then a loader's lines
# ("enable", "system", "shell", "sh", "/bin/busybox ECCHI", "cat /proc/mounts;
# ...", "cd /tmp; /bin/busybox wget ... -O - > d; ...", "exit"), waiting for
# the prompt after each. For each server: (a) throughput: SESSIONS sessions,
# CONCURRENCY at a time, on a fresh server; sessions/s, failures and the
# server's CPU per session; (b) memory: on another fresh server, 10 warm-up
# sessions that log in and exit, VmRSS idle, then HELD sessions logged in and
# held at the prompt, VmRSS again: (held - idle) / HELD = KiB per session.
#
# Cowrie (pinned below) is installed once with pip into bench/out/cowrie-venv,
# runs with its defaults except: telnet on 127.0.0.1, SSH off, a userdb of
# root:x:xc3511, a listen backlog of 1024 (iotscope's), and its wget/curl/
# tftp/ftpget/nc rate limits at 0 so it never fetches (the loader's URL is not
# on this machine); iotscope runs without --fetch (its default), so neither
# fetches. iotscope also writes a Cowrie-format event file (--events), as
# Cowrie writes cowrie.json and cowrie.log. Cowrie refuses to run as root, so
# when run as root both servers run as nobody (setpriv), and the measurements
# run in a new network namespace holding only loopback (unshare --net), so
# nothing can leave the machine. If Cowrie cannot be installed or started, iotscope is measured alone.
#
# IOTSCOPE_BIN=PATH skips the build and uses that binary (e.g. a debug build:
# its figures are then not the release's). HP_TIME_LIMIT (default 600) bounds
# each driver run in seconds; no new session starts after it.
set -euo pipefail
cd "$(dirname "$0")/.."
sessions=${1:-2000}
concurrency=${2:-50}
held=${3:-500}
out=bench/out
mkdir -p "$out"
self=$PWD/bench/honeypot.sh
bot=$PWD/bench/honeypot_bot.py
py=${PYTHON:-python3.11}
COWRIE_VERSION=3.1.4
venv=$PWD/$out/cowrie-venv
time_limit=${HP_TIME_LIMIT:-600}
if [ "$(id -u)" = 0 ]; then runas=(setpriv --reuid=65534 --regid=65534 --clear-groups); else runas=(); fi

cowrie_installed() {
    [ -x "$venv/bin/twistd" ] &&
        [ "$("${runas[@]}" "$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("cowrie"))' 2>/dev/null)" = "$COWRIE_VERSION" ]
}

# Setup, with the network: the build and (once) Cowrie's venv.
if [ -z "${HP_BENCH_INNER:-}" ]; then
    if [ -n "${IOTSCOPE_BIN:-}" ]; then
        IOTSCOPE_BIN=$(realpath "$IOTSCOPE_BIN")
    else
        cargo build --release -q -p iotscope
        IOTSCOPE_BIN=$PWD/target/release/iotscope
    fi
    COWRIE_WHY=
    if ! cowrie_installed; then
        # Under root the venv's interpreter must be readable by nobody too
        # (pyenv's lives under /root): prefer the system's python3.11.
        vpy=$py
        [ "$(id -u)" = 0 ] && [ -x /usr/bin/python3.11 ] && vpy=/usr/bin/python3.11
        echo "installing cowrie==$COWRIE_VERSION into $venv (log: $out/cowrie-pip.log) ..." >&2
        rm -rf "$venv"
        if ! { "$vpy" -m venv "$venv" && "$venv/bin/pip" install -q "cowrie==$COWRIE_VERSION"; } > "$out/cowrie-pip.log" 2>&1; then
            COWRIE_WHY="pip install cowrie==$COWRIE_VERSION failed (see $out/cowrie-pip.log)"
        elif ! cowrie_installed; then
            COWRIE_WHY="cowrie==$COWRIE_VERSION installed but not importable by $( [ "$(id -u)" = 0 ] && echo nobody || id -un)"
        else
            # Twisted's plugin cache, written now so the unprivileged server need
            # not (in a scratch directory: loading Cowrie's plugin writes var/).
            scratch=$(mktemp -d)
            (cd "$scratch" && "$venv/bin/python" -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))') >/dev/null 2>&1 || true
            rm -rf "$scratch"
        fi
    fi
    export IOTSCOPE_BIN COWRIE_WHY HP_BENCH_INNER=1
    if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
        exec unshare --net -- bash "$self" "$@"
    fi
    echo "note: not root (or no unshare): running in this network namespace; servers listen on 127.0.0.1 only" >&2
    HP_BENCH_INNER=outer
fi
[ "$HP_BENCH_INNER" = 1 ] && ip link set lo up
bin=$IOTSCOPE_BIN

hard=$(ulimit -Hn)
want=$((held + concurrency + 512))
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
[ "$(ulimit -n)" -ge "$want" ] || { echo "bench/honeypot.sh: need $want open files, the limit is $(ulimit -n)" >&2; exit 2; }

run=$PWD/$out/honeypot-run
servers=()
cleanup() {
    for p in "${servers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    for p in "${servers[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

fresh_dir() {  # DIR: empty, owned by the user the servers run as
    rm -rf "$1"
    mkdir -p "$1"
    [ "$(id -u)" = 0 ] && chown 65534:65534 "$1"
    return 0
}

stop_server() {  # PID
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

PID= PORT=
start_iotscope() {
    local dir=$run/iotscope
    fresh_dir "$dir"
    PORT=$(free_port)
    "${runas[@]}" "$bin" honeypot --telnet "127.0.0.1:$PORT" --db "$dir/hp.db" --events "$dir/events.json" \
        --login-fail-delay 0s --max-sessions 4096 --max-per-source 4096 --status 0s \
        > "$dir/stdout" 2> "$dir/stderr" &
    PID=$!
    servers+=("$PID")
    for _ in $(seq 300); do grep -q "telnet on" "$dir/stderr" 2>/dev/null && return 0; kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    echo "iotscope honeypot did not start:" >&2
    cat "$dir/stderr" >&2
    return 1
}

start_cowrie() {
    local dir=$run/cowrie
    fresh_dir "$dir"
    PORT=$(free_port)
    "${runas[@]}" mkdir -p "$dir/etc" "$dir/var/log/cowrie" "$dir/var/lib/cowrie/downloads" "$dir/var/lib/cowrie/tty" "$dir/var/run"
    "${runas[@]}" tee "$dir/etc/cowrie.cfg" > /dev/null <<EOF
[honeypot]
hostname = svr04
[ssh]
enabled = false
listen_endpoints = tcp:0:interface=127.0.0.1
[telnet]
enabled = true
listen_endpoints = tcp:$PORT:interface=127.0.0.1:backlog=1024
[shell]
wget_rate_limit_requests = 0
curl_rate_limit_requests = 0
tftp_rate_limit_requests = 0
ftpget_rate_limit_requests = 0
nc_rate_limit_requests = 0
EOF
    echo "root:x:xc3511" | "${runas[@]}" tee "$dir/etc/userdb.txt" > /dev/null
    # `cowrie start` minus the daemon: twistd in the foreground, logging to
    # var/log/cowrie/cowrie.log as a daemonised cowrie does.
    (cd "$dir" && exec "${runas[@]}" env HOME="$dir" PATH="$venv/bin:/usr/bin:/bin" \
        "$venv/bin/twistd" -n --umask=0022 --pidfile= --logger cowrie.python.logfile.logger cowrie) \
        > "$dir/twistd.out" 2>&1 &
    PID=$!
    servers+=("$PID")
    for _ in $(seq 600); do
        grep -q "Ready to accept Telnet connections" "$dir/var/log/cowrie/cowrie.log" 2>/dev/null && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q "Ready to accept Telnet connections" "$dir/var/log/cowrie/cowrie.log" 2>/dev/null; then
        echo "cowrie did not start:" >&2
        tail -20 "$dir/twistd.out" "$dir/var/log/cowrie/cowrie.log" >&2 2>/dev/null || true
        stop_server "$PID"
        return 1
    fi
    grep -q twistd "/proc/$PID/cmdline" || { echo "cowrie: pid $PID is not twistd" >&2; stop_server "$PID"; return 1; }
}

bench_one() {  # NAME START_FUNCTION
    local name=$1 start=$2
    echo "== $name: throughput ($sessions sessions, $concurrency at a time)" >&2
    $start || return 1
    timeout $((time_limit + 180)) "$py" "$bot" throughput --port "$PORT" --pid "$PID" \
        --sessions "$sessions" --concurrency "$concurrency" --time-limit "$time_limit" \
        > "$out/honeypot-$name-throughput.json"
    stop_server "$PID"
    "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); print("   ", d["completed"], "done,", d["failed"], "failed,", d["sessions_per_s"], "sessions/s", d["failures"] or "")' \
        "$out/honeypot-$name-throughput.json" >&2
    echo "== $name: memory ($held sessions held at the prompt)" >&2
    $start || return 1
    timeout $((time_limit + 180)) "$py" "$bot" memory --port "$PORT" --pid "$PID" \
        --sessions "$held" --concurrency "$concurrency" --time-limit "$time_limit" \
        > "$out/honeypot-$name-memory.json"
    stop_server "$PID"
}

echo "$(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg); iotscope: $bin; cowrie==$COWRIE_VERSION" \
    "; servers run as $( [ ${#runas[@]} -gt 0 ] && echo nobody || id -un)$( [ "$HP_BENCH_INNER" = 1 ] && echo ', in a loopback-only network namespace')"
case "$bin" in */debug/*) echo "note: $bin looks like a debug build" ;; esac
rm -f "$out"/honeypot-{iotscope,cowrie}-{throughput,memory}.json
bench_one iotscope start_iotscope
cowrie_status=ok
if [ -n "$COWRIE_WHY" ]; then
    cowrie_status=$COWRIE_WHY
elif ! bench_one cowrie start_cowrie; then
    cowrie_status="Cowrie $COWRIE_VERSION did not start or its run failed (see $run/cowrie/)"
fi
[ "$cowrie_status" = ok ] || echo "COWRIE NOT MEASURED: $cowrie_status; iotscope alone below" >&2

echo
"$py" - "$out" "$cowrie_status" <<'PY'
import json, os, sys
out, cowrie_status = sys.argv[1], sys.argv[2]
def load(name, mode):
    p = os.path.join(out, f"honeypot-{name}-{mode}.json")
    return json.load(open(p)) if os.path.exists(p) else None
rows = {}
for name in ("iotscope", "cowrie"):
    t, m = load(name, "throughput"), load(name, "memory")
    if t or m:
        rows[name] = (t, m)
fmt = "{:<9} {:>11} {:>9} {:>11} {:>13} {:>12} {:>13} {:>12}"
print(fmt.format("server", "sessions/s", "failures", "idle RSS", "KiB/session", "CPU ms/sess", "session p50", "held at once"))
def f(v, spec):
    return "-" if v is None else format(v, spec)
for name, (t, m) in rows.items():
    fails = (t["failed"] + t["not_run"] if t else 0) + (m["failed"] if m else 0)
    print(fmt.format(name, f(t and t["sessions_per_s"], ".1f"), fails,
                     f(m and m["idle_rss_kib"] / 1024, ".1f") + " MiB" if m else "-",
                     f(m and m["kib_per_session"], ".1f"),
                     f(t and t.get("server_cpu_ms_per_session"), ".2f"),
                     f(t and t["session_ms_p50"], ".0f") + " ms" if t else "-",
                     f(m and m["held"], "d")))
if "iotscope" in rows and "cowrie" in rows:
    (ti, mi), (tc, mc) = rows["iotscope"], rows["cowrie"]
    def ratio(a, b):
        return "-" if not a or not b else f"{a / b:.3g}"
    print()
    print("iotscope/cowrie: sessions/s", ratio(ti["sessions_per_s"], tc["sessions_per_s"]),
          "| KiB/session", ratio(mi["kib_per_session"], mc["kib_per_session"]),
          "| idle RSS", ratio(mi["idle_rss_kib"], mc["idle_rss_kib"]),
          "| CPU/session", ratio(ti.get("server_cpu_ms_per_session"), tc.get("server_cpu_ms_per_session")))
else:
    print("\ncowrie: not measured:", cowrie_status)
for name, (t, m) in rows.items():
    for d in (t, m):
        if d and (d["failures"] or d.get("not_run")):
            print(f"{name} {d['mode']}: failures {d['failures']}" + (f", not run (time limit) {d['not_run']}" if d.get("not_run") else ""))
print(f"\n(failures = throughput sessions failed or not run + sessions that could not be logged in and held;"
      f" CPU ms/sess = server user+system CPU over the throughput run / sessions completed; JSON in {out}/honeypot-*.json)")
PY
