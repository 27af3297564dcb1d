#!/usr/bin/env bash
# The dashboard under load (issue 7's goals: overview and time-series
# answers under 50 ms at the 99th percentile with a year of hourly buckets
# over the whole port range and 100,000 findings; /check at 5,000 requests a
# second or more on this machine). Uses wrk (apt-get install wrk).
#
#   bash bench/web.sh            (builds the store once in $WORK, default /tmp/iotscope-web-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "bench/web.sh: needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build --release -q -p iotscope
bin=$PWD/target/release/iotscope
WORK=${WORK:-/tmp/iotscope-web-bench}
mkdir -p "$WORK"
cd "$WORK"
db=year.db
if [ ! -s "$db" ]; then
    echo "== building the store: a year of darknet traffic (3,000,000 frames, hourly buckets) and 100,000 findings"
    "$bin" lab darknet --duration 365d --packets 3000000 --seed 4 --out year.pcap
    /usr/bin/time -f "telescope ingest: %e s" "$bin" telescope analyze --darknet 198.18.0.0/16 \
        --darknet 2001:db8:1::/48 --db "$db" --format json year.pcap >/dev/null
    # 100,000 findings on 127.80.0.0/16 addresses (as a survey would store them).
    python3 - "$db" <<'PY'
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
kinds = [("default_credential", "critical", 23, "telnet"), ("open_control_panel", "critical", 80, "http"),
         ("exposed_telnet", "medium", 2323, "telnet"), ("no_authentication", "high", 8080, "http")]
rows = []
for i in range(100_000):
    ip = f"127.80.{(i // 4 // 250) % 256}.{(i // 4) % 250 + 1}"
    kind, sev, port, svc = kinds[i % 4]
    dev = json.dumps({"vendor": "Vendor%d" % (i % 17), "model": "M%d" % (i % 5), "device_type": "camera", "criticality": "consumer"})
    ev = json.dumps({"protocol": svc, "matched": "rule", "ts": "2026-11-26T00:00:00Z"})
    rows.append((ip, port + (i // 100_000), svc, kind, sev, dev, ev, "2026-11-26T00:00:00Z", "2026-11-26T00:00:00Z"))
db.executemany("INSERT OR REPLACE INTO findings VALUES (?,?,?,?,?,?,?,?,?)", rows)
db.commit()
print("findings:", db.execute("SELECT count(*) FROM findings").fetchone()[0])
PY
    "$bin" alerts build --db "$db"
fi
sqlite3 "$db" "SELECT 'buckets', count(*) FROM buckets; SELECT 'bucket_port_blocks rows', count(*) FROM bucket_port_blocks;
  SELECT 'findings', count(*) FROM findings;
  SELECT 'alerts', count(*) FROM alerts;" 2>/dev/null || true

port=18099
"$bin" serve --db "$db" --listen 127.0.0.1:$port --check-per-minute 0 2>serve.log &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 100); do grep -q listening serve.log && break; sleep 0.1; done
base=http://127.0.0.1:$port

# The server computes the preset periods (all, 24h, 7d, 30d, 365d) when it
# starts and after each ingest; a visitor a minute later finds them ready.
for _ in $(seq 1200); do grep -q "preset periods ready" serve.log && break; sleep 0.1; done
grep "preset periods ready" serve.log || true
echo "== preset periods, once ready"
for preset in all 24h 7d 30d 365d; do
    curl -s -o /dev/null -w "overview and map, period=$preset: %{time_total} s " "$base/api/overview?period=$preset"
    curl -s -o /dev/null -w "+ %{time_total} s\n" "$base/api/map?period=$preset"
done
echo "== first answers for custom periods (computed on demand, then cached)"
for since in 2016-11-01 2017-01-01 2017-03-01 2017-05-01 2017-07-01; do
    curl -s -o /dev/null -w "overview since $since: %{time_total} s\n" "$base/api/overview?since=${since}T00:00:00Z"
done
echo "== latency, one connection at a time (wrk -c1, 10 s each)"
for path in "/api/overview?period=all" "/api/overview?period=30d" "/api/overview?period=365d" \
    "/api/overview?since=2017-03-01T00:00:00Z" "/api/series?ports=23,2323" "/api/series?period=30d&ports=23,2323" \
    "/api/series?ports=23,2323,22,80,8080,443" "/api/map?period=7d" "/api/map?port=23" "/check"; do
    printf '%-45s ' "$path"
    wrk -t1 -c1 -d10s --latency "$base$path" | awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /Requests\/sec/{rps=$2} END{print "p50", p50, " p99", p99, " req/s", rps}'
done
echo "== /check throughput (wrk -t2 -c64, 15 s; wrk shares the 2 cores)"
wrk -t2 -c64 -d15s --latency "$base/check" | grep -E "99%|Requests/sec"
echo "== /api/series under concurrency (wrk -t2 -c8, 10 s)"
wrk -t2 -c8 -d10s --latency "$base/api/series?ports=23,2323" | grep -E "99%|Requests/sec"
