#!/usr/bin/env bash
# The multi-node shape on one machine (issue 19): one PostgreSQL store; two
# live sensors, each in a network namespace of its own, fed by a generated
# darknet capture replayed over a veth pair; a survey in three shards run at
# once against a lab of emulated devices; a telnet honeypot visited by a
# scripted bot; and the dashboard over all of it. At the end it checks that
# the store holds exactly what each part produced and prints a summary.
#
#   sudo bash bench/cluster.sh [PACKETS_PER_SENSOR]    # default 50,000
#
# Needs root (namespaces, capture), ip, tcpreplay, curl, python3, a
# PostgreSQL server package (postgresql-15) and libpcap-dev to build the
# sensor. Everything stays on this machine: the sensors' namespaces have no
# route out (the replayed frames go to 198.18.0.0/15 on a veth), the lab,
# the survey, the honeypot and the dashboard use 127.79.240.0/24 and
# 127.0.0.1 only. Every process is bounded in time and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-50000}
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: needs root (network namespaces, capture)" >&2; exit 2; }
for t in ip tcpreplay curl python3; do
    command -v $t >/dev/null || { echo "cluster.sh: $t is missing" >&2; exit 2; }
done
cargo build --release -q -p iotscope --features live-capture
bin=$PWD/target/release/iotscope
out=$PWD/bench/out/cluster
rm -rf "$out"
mkdir -p "$out"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for i in 1 2; do
        ip netns del "iosc-src$i" 2>/dev/null || true
        ip netns del "iosc-sen$i" 2>/dev/null || true
    done
    scripts/pg-scratch.sh stop "$out/pg"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "one PostgreSQL"
url=$(scripts/pg-scratch.sh start "$out/pg")
port=$(sed -E 's#.*:([0-9]+)/.*#\1#' <<<"$url")
psql -q "$url" -c "CREATE DATABASE cluster"
db="postgres://postgres@127.0.0.1:$port/cluster"
# The sensors' namespaces reach the server through its Unix socket.
db_socket="postgres://postgres@localhost:$port/cluster?host=$out/pg"
echo "store: $db"

step "two sensors on veth pairs"
for i in 1 2; do
    "$bin" lab darknet --out "$out/sensor$i.pcap" --packets "$packets" --seed "$i" >/dev/null
    ip netns add "iosc-src$i"
    ip netns add "iosc-sen$i"
    ip link add "iosc$i-a" netns "iosc-src$i" type veth peer name "iosc$i-b" netns "iosc-sen$i"
    ip -n "iosc-src$i" link set "iosc$i-a" up
    ip -n "iosc-sen$i" link set "iosc$i-b" up
    ip netns exec "iosc-sen$i" "$bin" sensor --interface "iosc$i-b" \
        --darknet 198.18.0.0/15 --darknet 2001:db8:1::/48 --bucket 1m --grace 1s \
        --duration 300s --format json --db "$db_socket" --spool "$out/sensor$i.spool" \
        >"$out/sensor$i.json" 2>"$out/sensor$i.log" &
    pids+=($!)
done
for i in 1 2; do
    for _ in $(seq 100); do grep -q "sensor on" "$out/sensor$i.log" && break; sleep 0.1; done
    grep -q "sensor on" "$out/sensor$i.log" || { cat "$out/sensor$i.log"; exit 1; }
done
for i in 1 2; do
    ip netns exec "iosc-src$i" timeout 120 tcpreplay -q -i "iosc$i-a" --pps 20000 "$out/sensor$i.pcap" >/dev/null 2>&1 &
done
wait_replays() { while pgrep -f "tcpreplay -q -i iosc" >/dev/null; do sleep 0.2; done; }

step "a lab and a survey in three shards"
"$bin" lab --subnet 127.79.240.0/24 --devices 30 --seed 7 --duration 300s \
    --manifest "$out/lab.json" >"$out/lab.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ -s "$out/lab.json" ] && break; sleep 0.1; done
shards=()
for i in 0 1 2; do
    "$bin" survey --targets 127.79.240.0/24 --ports 23,80,502,1883,8080 --rate 0 \
        --seed 42 --shard "$i/3" --checks all --timeout 2s --db "$db" \
        --output "$out/shard$i.jsonl" 2>"$out/shard$i.log" &
    shards+=($!)
done
for p in "${shards[@]}"; do wait "$p"; done
"$bin" survey status --db "$db"

step "a honeypot and a bot"
hp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" honeypot --telnet "127.0.0.1:$hp_port" --sensor hp-cluster --db "$db" \
    --spool "$out/honeypot.spool" \
    --login-fail-delay 0s --duration 300s --status 0s >"$out/honeypot.log" 2>&1 &
hp=$!
pids+=($hp)
for _ in $(seq 100); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$hp_port),0.2)" 2>/dev/null && break; sleep 0.1; done
python3 bench/honeypot_bot.py throughput --port "$hp_port" --sessions 20 --concurrency 4 >"$out/bot.json"
kill -TERM "$hp"; wait "$hp" || true

step "the sensors stop (each commits what it counted)"
wait_replays
sleep 2
for i in 1 2; do kill -TERM "${pids[$((i-1))]}"; done
for i in 1 2; do wait "${pids[$((i-1))]}" || true; done

step "the dashboard over all of it"
"$bin" users add operator --role operator --db "$db" >/dev/null
token=$("$bin" users token operator --db "$db" 2>/dev/null | tail -1)
web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --db "$db" --listen "127.0.0.1:$web_port" >"$out/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$web_port/api/version" >/dev/null && break; sleep 0.1; done
api() { curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$web_port/api/$1"; }
api "overview?period=all" >"$out/overview.json"
api "findings" >"$out/findings.json"
api "honeypot" >"$out/honeypot.json"

step "checks"
truth=$("$bin" telescope analyze --format json --no-detect --darknet 198.18.0.0/15 --darknet 2001:db8:1::/48 \
    "$out/sensor1.pcap" "$out/sensor2.pcap" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
stored=$("$bin" telescope report --format json --db "$db" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
# The same figure from the coarsest tier that answers (the daily rollups).
coarse=$("$bin" telescope report --format json --tier coarsest --db "$db" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["packets"], r["tier"])')
complete=$("$bin" survey status --format json --db "$db" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(all(x["complete"] for x in r) and len(r)==1)')
sessions=$(psql -tA "$db" -c "SELECT COUNT(*) FROM honeypot_sessions WHERE sensor = 'hp-cluster'")
bot=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("completed", "?"))' "$out/bot.json")
findings=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d["findings"]) if isinstance(d, dict) and "findings" in d else len(d))' "$out/findings.json")
printf 'telescope: %s frames to the darknets in the captures, %s stored by the two sensors (%s from the coarsest tier: %s)\n' "$truth" "$stored" "${coarse% *}" "${coarse#* }"
printf 'survey: one run in three shards, complete: %s; %s findings through the dashboard API\n' "$complete" "$findings"
printf 'honeypot: %s sessions stored (bot: %s sessions completed)\n' "$sessions" "$bot"
printf 'dashboard overview: %s\n' "$(head -c 300 "$out/overview.json")"
[ "$truth" = "$stored" ] || { echo "cluster.sh: the sensors stored $stored of $truth frames" >&2; exit 1; }
[ "${coarse% *}" = "$stored" ] || { echo "cluster.sh: the coarsest tier gives ${coarse% *}, the buckets $stored" >&2; exit 1; }
[ "$complete" = True ] || { echo "cluster.sh: the survey run is not complete" >&2; exit 1; }
[ "$sessions" -gt 0 ] || { echo "cluster.sh: no honeypot session stored" >&2; exit 1; }
echo "cluster.sh: every part's results are in the one store"
