#!/usr/bin/env bash
# Lab scale: start N emulated devices (default 10,000) on 127.80.0.0/16 and
# report how long until the manifest appears, the listeners, and the peak
# resident memory; then sample 500 services with real connections.
#
#   bash bench/lab.sh [DEVICES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
cargo build --release -q -p iotscope
out=$(mktemp -d)
start=$(date +%s.%N)
/usr/bin/time -o "$out/time" -f "%M" target/release/iotscope lab --devices "$n" --seed 1 \
    --subnet 127.80.0.0/16 --manifest "$out/m.json" --duration 60s 2> "$out/lab.err" &
timer=$!
while [ ! -s "$out/m.json" ]; do sleep 0.05; done
ready=$(echo "$(date +%s.%N) - $start" | bc -l)
python3 - "$out/m.json" <<'PY'
import json, random, socket, sys, time
m = json.load(open(sys.argv[1]))
svcs = [(d["ip"], s["port"], s["service"]) for d in m["devices"] for s in d["services"]]
random.seed(1)
sample = random.sample(svcs, min(500, len(svcs)))
ok = 0
t = time.time()
for ip, port, svc in sample:
    s = socket.create_connection((ip, port), timeout=5)
    if svc == "http":
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    if svc in ("http", "telnet", "ssh", "garbage"):
        s.settimeout(5)
        ok += len(s.recv(100)) > 0
    else:
        ok += 1
    s.close()
print(f"{len(m['devices'])} devices, {len(svcs)} listeners; {ok} of {len(sample)} sampled services answered in {time.time() - t:.1f} s")
PY
# Stop the lab itself (the child of `time`), so `time` can report.
pkill -TERM -P "$timer" || true
wait "$timer" || true
printf 'manifest after %.2f s; peak RSS %.1f MB\n' "$ready" "$(echo "$(tail -1 "$out/time")/1024" | bc -l)"
grep -h "listeners" "$out/lab.err" || true
