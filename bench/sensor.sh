#!/usr/bin/env bash
# Live sensor benchmark beside tcpdump, on a veth between two network
# namespaces this script creates (no route out; removed on exit). Needs root,
# ip, tcpreplay, tcpdump and libpcap-dev.
#
#   sudo bash bench/sensor.sh [PACKETS] [RATES]
#
# Generates (once, cached under bench/out/) a darknet capture with `iotscope
# lab darknet`, then for each rate in RATES (packets/s; "top" = as fast as
# tcpreplay can) replays it into the veth twice: once with `iotscope sensor`
# capturing (store in a scratch file), once with `tcpdump -w /dev/null` and
# the same darknet filter. Prints, per rate and tool, the rate tcpreplay
# reached, frames seen, frames dropped, CPU seconds and CPU per frame, then
# the highest rate each kept without a drop and the CPU ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-1000000}
rates=${2:-"100000 200000 300000 top"}
out=bench/out
mkdir -p "$out"
cargo build --release -q -p iotscope --features live-capture
bin=$(pwd)/target/release/iotscope
cap="$out/darknet-$packets-1.pcap"
if [ ! -s "$cap" ]; then
    echo "generating $cap ..." >&2
    "$bin" lab darknet --out "$cap" --packets "$packets" --seed 1
fi
cat "$cap" > /dev/null

tx=iotsb-tx-$$
rx=iotsb-rx-$$
cleanup() { ip netns del "$tx" 2>/dev/null || true; ip netns del "$rx" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$tx"
ip netns add "$rx"
ip link add bv0 netns "$tx" type veth peer name bv1 netns "$rx"
for ns in "$tx" "$rx"; do ip -n "$ns" link set lo up; done
ip -n "$tx" link set bv0 up
ip -n "$rx" link set bv1 up
darknet="198.18.0.0/16"
filter="(dst net $darknet or dst net 2001:db8:1::/48) or (vlan and (dst net $darknet or dst net 2001:db8:1::/48))"
expected=$("$bin" telescope analyze "$cap" --darknet "$darknet" --darknet 2001:db8:1::/48 --format json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
echo "capture: $cap ($packets frames, $expected to the darknet); $(nproc) cores; veth bv0 -> bv1"

replay() {  # rate -> prints the rate reached (packets/s)
    local rate=$1 args=(--pps "$1")
    [ "$rate" = top ] && args=(--topspeed)
    ip netns exec "$tx" timeout 120 tcpreplay -i bv0 "${args[@]}" "$cap" 2>&1 |
        sed -n 's/.*Rated: [0-9.]* Bps, [0-9.]* Mbps, \([0-9.]*\) pps.*/\1/p'
}

declare -A BEST
best_rate() { [ -z "${BEST[$1]:-}" ] || [ "$(echo "$2 > ${BEST[$1]}" | bc -l)" = 1 ] && BEST[$1]=$2 || true; }
declare -A CPUPP
printf '%-8s %-9s %10s %10s %9s %8s %10s\n' tool rate reached frames dropped "CPU s" "ns/frame"
for rate in $rates; do
    # iotscope sensor
    db=$(mktemp -d)/s.db
    ip netns exec "$rx" /usr/bin/time -o "$out/sensor.time" -f "%U %S" \
        "$bin" sensor --interface bv1 --darknet "$darknet" --darknet 2001:db8:1::/48 \
        --db "$db" --bucket 1m --format json --duration 600s > "$out/sensor.json" 2> "$out/sensor.err" &
    spid=$!
    for _ in $(seq 50); do grep -q "sensor on" "$out/sensor.err" 2>/dev/null && break; sleep 0.1; done
    reached=$(replay "$rate")
    sleep 1
    pkill -TERM -f "^$bin sensor --interface bv1" || true
    wait "$spid" || true
    read -r user sys < "$out/sensor.time"
    read -r frames dropped < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["frames"], d["dropped"]+d["if_dropped"])' "$out/sensor.json")
    cpu=$(echo "$user + $sys" | bc -l)
    printf '%-8s %-9s %10.0f %10d %9d %8.2f %10.0f\n' iotscope "$rate" "$reached" "$frames" "$dropped" "$cpu" \
        "$(echo "$cpu * 1000000000 / ($frames + 1)" | bc -l)"
    [ "$dropped" = 0 ] && [ "$frames" = "$expected" ] && best_rate iotscope "$reached"
    CPUPP[iotscope-$rate]=$(echo "$cpu / ($frames + 1)" | bc -l)
    rm -rf "$(dirname "$db")"

    # tcpdump, same filter
    ip netns exec "$rx" /usr/bin/time -o "$out/tcpdump.time" -f "%U %S" \
        tcpdump -i bv1 -w /dev/null -B 65536 "$filter" 2> "$out/tcpdump.err" &
    tpid=$!
    for _ in $(seq 50); do grep -q "listening on" "$out/tcpdump.err" 2>/dev/null && break; sleep 0.1; done
    reached=$(replay "$rate")
    sleep 1
    pkill -INT -f "^tcpdump -i bv1" || true
    wait "$tpid" || true
    read -r user sys < "$out/tcpdump.time"
    frames=$(sed -n 's/^\([0-9]*\) packets captured.*/\1/p' "$out/tcpdump.err")
    dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$out/tcpdump.err")
    cpu=$(echo "$user + $sys" | bc -l)
    printf '%-8s %-9s %10.0f %10d %9d %8.2f %10.0f\n' tcpdump "$rate" "$reached" "$frames" "$dropped" "$cpu" \
        "$(echo "$cpu * 1000000000 / ($frames + 1)" | bc -l)"
    [ "$dropped" = 0 ] && [ "$frames" = "$expected" ] && best_rate tcpdump "$reached"
    CPUPP[tcpdump-$rate]=$(echo "$cpu / ($frames + 1)" | bc -l)
done
echo
for tool in iotscope tcpdump; do
    printf '%-8s highest rate with every frame and no drop: %s packets/s\n' "$tool" "${BEST[$tool]:-none}"
done
for rate in $rates; do
    printf 'at %-8s iotscope sensor uses %5.2fx the CPU per frame of tcpdump -w /dev/null (counting every statistic and committing to the store vs writing nothing)\n' \
        "$rate" "$(echo "${CPUPP[iotscope-$rate]} / ${CPUPP[tcpdump-$rate]}" | bc -l)"
done
