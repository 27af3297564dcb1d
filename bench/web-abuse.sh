#!/usr/bin/env bash
# The dashboard under hostile load (issue 15), on the year-long bench store
# that bench/web.sh builds: at the same time, 1,000 half-sent requests
# (slowloris, one per loopback address), 50 logins a second from 64
# addresses, a sweep of distinct parameter values on every public endpoint,
# and wrk on /check and /api/overview. Reports peak RSS, /check p99 and
# throughput (against the same wrk run without the attack), and every
# answer that is a 5xx. Goals: peak RSS < 500 MB, /check p99 < 100 ms,
# zero 5xx, /check throughput >= 80% of its figure without the attack.
#
#   bash bench/web-abuse.sh        (needs wrk, python3; builds the store like bench/web.sh)
# Loopback only; every load generator stops by itself after DURATION s (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench/web-abuse.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release -q -p iotscope
bin=$PWD/target/release/iotscope
WORK=${WORK:-/tmp/iotscope-web-bench}
DURATION=${DURATION:-30}
mkdir -p "$WORK"
if [ ! -s "$WORK/year.db" ]; then
    echo "== no bench store yet: building it with bench/web.sh's recipe (a year of traffic, 100,000 findings)"
    # bench/web.sh builds the store first, then measures; only its build is needed here.
    timeout 1200 bash bench/web.sh >/dev/null 2>&1 || true
fi
cd "$WORK"
db=year.db
[ -s "$db" ] || { echo "bench/web-abuse.sh: no store at $WORK/$db" >&2; exit 2; }
# One account for the login storm (a wrong password every time).
printf 'bench-password-1\n' | "$bin" users add bench --role operator --password-stdin --db "$db" 2>/dev/null || true

port=18098
"$bin" serve --db "$db" --listen 127.0.0.1:$port --check-per-minute 0 2>abuse-serve.log &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening abuse-serve.log && break; sleep 0.1; done
for _ in $(seq 1200); do grep -q "preset periods ready" abuse-serve.log && break; sleep 0.1; done
base=http://127.0.0.1:$port
hwm() { awk '/VmHWM/{print int($2/1024)}' /proc/$server/status; }

echo "== /check and /api/overview without the attack (wrk -t2 -c32, 15 s)"
wrk -t1 -c12 -d15s --latency "$base/check" > calm-check.txt &
wrk -t1 -c12 -d15s --latency "$base/api/overview" > calm-overview.txt
wait %2 2>/dev/null || sleep 1
grep -E "99%|Requests/sec|Non-2xx" calm-check.txt | sed 's/^/  check    /'
grep -E "99%|Requests/sec|Non-2xx" calm-overview.txt | sed 's/^/  overview /'
echo "  peak RSS so far: $(hwm) MB"

echo "== the attack, ${DURATION} s: slowloris x1000, logins 50/s from 64 addresses, a parameter sweep, with wrk"
python3 - "$port" "$DURATION" > attack.txt <<'PY' &
import collections, json, socket, sys, threading, time, urllib.request
port, duration = int(sys.argv[1]), float(sys.argv[2])
end = time.time() + duration
codes = collections.Counter()
lock = threading.Lock()
def tally(kind, code):
    with lock:
        codes[(kind, code)] += 1
def request(kind, path, src, method="GET", body=None):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(src, 0))
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        s.sendall((head + "\r\n" + (body or "")).encode())
        data = s.recv(64)
        s.close()
        code = data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed"
    except Exception as e:
        code = type(e).__name__
    tally(kind, code)
def slowloris():
    socks = []
    for i in range(1000):
        if time.time() > end:
            break
        try:
            s = socket.socket()
            s.bind((f"127.70.{i // 250}.{i % 250 + 1}", 0))
            s.settimeout(2)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /check HTTP/1.1\r\n")
            socks.append(s)
        except Exception as e:
            tally("slowloris-open", type(e).__name__)
    # Trickle a header line now and then; reopen what the server closed.
    while time.time() < end:
        for k, s in enumerate(socks):
            try:
                s.sendall(b"X-a: b\r\n")
            except Exception:
                tally("slowloris", "closed by server")
                try:
                    n = socket.socket(); n.bind((f"127.70.{k // 250}.{k % 250 + 1}", 0)); n.settimeout(2)
                    n.connect(("127.0.0.1", port)); n.sendall(b"GET /check HTTP/1.1\r\n"); socks[k] = n
                except Exception as e:
                    tally("slowloris-reopen", type(e).__name__)
        time.sleep(2)
    for s in socks:
        s.close()
def logins():
    i = 0
    while time.time() < end:
        body = json.dumps({"name": "bench", "password": f"wrong-{i}"})
        src = f"127.71.0.{i % 64 + 1}"
        threading.Thread(target=request, args=("login", "/api/login", src, "POST", body), daemon=True).start()
        i += 1
        time.sleep(1 / 50)
def sweep():
    i = 0
    paths = ["/api/overview?top={}", "/api/map?limit={}", "/api/overview?since=2017-01-01T00:{:02}:00Z",
             "/api/series?ports={}", "/api/series?since=2016-{:02}-01T00:00:00Z&ports=23", "/check?lang=en&x={}"]
    while time.time() < end:
        p = paths[i % len(paths)].format(i % 60 + 1 if "since" in paths[i % len(paths)] else i % 1000 + 1)
        request("sweep", p, f"127.72.{(i // 250) % 250}.{i % 250 + 1}")
        i += 1
workers = [threading.Thread(target=f) for f in (slowloris, logins, sweep, sweep)]
for w in workers: w.start()
for w in workers: w.join()
time.sleep(1)
for (kind, code), n in sorted(codes.items()):
    print(f"  {kind:<16} {code:<22} {n}")
PY
attack=$!
sleep 5
wrk -t1 -c12 -d$((DURATION - 10))s --latency "$base/check" > storm-check.txt &
wrk -t1 -c12 -d$((DURATION - 10))s --latency "$base/api/overview" > storm-overview.txt
wait $attack
grep -E "99%|Requests/sec|Non-2xx|Socket errors" storm-check.txt | sed 's/^/  check    /'
grep -E "99%|Requests/sec|Non-2xx|Socket errors" storm-overview.txt | sed 's/^/  overview /'
echo "  answers to the attackers:"
cat attack.txt
echo "== figures"
calm=$(awk '/Requests\/sec/{print $2}' calm-check.txt)
storm=$(awk '/Requests\/sec/{print $2}' storm-check.txt)
p99=$(awk '/^ +99%/{print $2}' storm-check.txt)
fives=$(awk '$2 ~ /^5/ {s += $3} END {print s + 0}' attack.txt)
echo "peak RSS: $(hwm) MB (goal < 500)"
echo "/check p99 under attack: $p99 (goal < 100ms)"
echo "/check throughput: $storm req/s under attack, $calm req/s without: $(python3 -c "print(f'{100*$storm/$calm:.0f}%')") (goal >= 80%)"
echo "5xx answers to the attackers: $fives (goal 0); wrk non-2xx lines above"
kill -0 $server 2>/dev/null && echo "server alive" || echo "server died"
