#!/usr/bin/env bash
# Connect-mode survey beside `nmap -sT` on loopback: a lab of 250 devices in
# 127.78.0.0/24 inside a /18 sweep (the rest refuses), 10 ports.
# Reports wall time, CPU, peak memory and whether both found the same open pairs.
#
#   bash bench/survey.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p iotscope
bin=target/release/iotscope
out=$(mktemp -d)
ports=21,22,23,80,81,502,1883,2323,8080,8081
"$bin" lab --devices 250 --seed 1 --subnet 127.78.0.0/24 --manifest "$out/m.json" --duration 120s 2>/dev/null &
lab=$!
while [ ! -s "$out/m.json" ]; do sleep 0.05; done
/usr/bin/time -o "$out/t1" -f "%e %U %S %M" "$bin" survey --targets 127.78.0.0/18 --ports "$ports" --rate 0 --no-grab --output "$out/ours.jsonl" 2>/dev/null
/usr/bin/time -o "$out/t2" -f "%e %U %S %M" nmap -n -Pn -sT -p "$ports" --open -oG "$out/nmap.gnmap" 127.78.0.0/18 >/dev/null
/usr/bin/time -o "$out/t3" -f "%e %U %S %M" "$bin" survey --targets 127.78.0.0/24 --ports "$ports" --rate 0 --output "$out/grab.jsonl" 2>/dev/null
kill -TERM "$lab"; wait "$lab" || true
# The kernel floor: the same number of bare connects, one thread, nothing else.
if command -v gcc >/dev/null; then
    gcc -O2 -o "$out/connect-floor" bench/connect-floor.c
    /usr/bin/time -o "$out/t4" -f "%e %U %S %M" "$out/connect-floor" 163840 >/dev/null
fi
for f in t1 t2 t3 t4; do
    [ -f "$out/$f" ] || continue
    read -r wall user sys rss < "$out/$f"
    name=$(case $f in t1) echo "iotscope survey --no-grab (/18)";; t2) echo "nmap -sT (/18)";; t3) echo "iotscope survey with banners (/24)";; t4) echo "kernel floor: 163,840 bare connects";; esac)
    printf '%-36s %6.2f s wall %6.2f s CPU %7.1f MB\n' "$name" "$wall" "$(echo "$user + $sys" | bc -l)" "$(echo "$rss/1024" | bc -l)"
done
python3 - "$out" <<'PY'
import json, re, sys
d = sys.argv[1]
ours = {(r["ip"], r["port"]) for r in map(json.loads, open(f"{d}/ours.jsonl"))}
theirs = set()
for line in open(f"{d}/nmap.gnmap"):
    m = re.match(r"Host: (\S+) .*Ports: (.*)", line)
    if m:
        for p in m.group(2).split(","):
            f = p.strip().split("/")
            if f[1] == "open":
                theirs.add((m.group(1), int(f[0])))
print(f"open pairs: iotscope {len(ours)}, nmap {len(theirs)}, identical: {ours == theirs}")
PY
