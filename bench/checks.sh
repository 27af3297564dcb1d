#!/usr/bin/env bash
# Default-credential checks beside hydra, medusa and Nmap's telnet-brute.
#
# 1. A lab of N devices (default 1000) on 127.80.0.0/16: `iotscope survey
#    --checks all` over the whole lab; accuracy against the manifest (every
#    default-credential device and open panel found, no hardened login flagged,
#    the audit log free of commands and changes), wall time, CPU, memory.
# 2. The same K telnet devices (default 20, port 23, no lockout) checked with
#    the same 61-pair Mirai dictionary by iotscope, hydra, medusa and nmap:
#    wall time, pairs tried as counted by the devices themselves (the lab's
#    audit log), and which default credentials each reported.
#
#   bash bench/checks.sh [N] [K]     (needs hydra, medusa, nmap, python3, GNU time)
#   PEERS=0 bash bench/checks.sh     (part 1 only)
# Loopback only; every run is bounded by RUN_TIMEOUT (default 600 s).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
K=${2:-20}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
cargo build --release -q -p iotscope
bin=$PWD/target/release/iotscope
out=$(mktemp -d)
echo "bench/checks.sh: working in $out"
"$bin" lab --devices "$N" --seed 7 --subnet 127.80.0.0/16 --manifest "$out/m.json" \
    --audit "$out/audit.jsonl" --duration 3600s 2>"$out/lab.log" &
lab=$!
trap 'kill -TERM $lab 2>/dev/null || true' EXIT
while [ ! -s "$out/m.json" ]; do sleep 0.1; done
range=$(python3 -c "import json; d=json.load(open('$out/m.json'))['devices']; print(d[0]['ip']+'-'+d[-1]['ip'])")
grep -v '^#' data/mirai-creds.txt | grep . | awk '!seen[$0]++' > "$out/creds.txt"

echo "== 1. iotscope survey --checks all over $N devices ($range)"
/usr/bin/time -o "$out/t-lab" -f "%e %U %S %M" timeout "$RUN_TIMEOUT" "$bin" survey --targets "$range" \
    --ports 21,22,23,80,81,443,502,554,1883,2323,8080,8081 --rate 0 --timeout 3s --checks all \
    --db "$out/lab.db" --output "$out/lab.jsonl" 2>"$out/lab-survey.log" || true
tail -2 "$out/lab-survey.log"
"$bin" findings --db "$out/lab.db" --format json --reveal > "$out/lab-findings.json"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
m = json.load(open(f"{d}/m.json"))["devices"]
f = json.load(open(f"{d}/lab-findings.json"))
order = [l.strip() for l in open(f"{d}/creds.txt")]
got = {(x["ip"], x["port"], x["kind"]) for x in f}
exp, maybe = set(), set()
for dev in m:
    ip = dev["ip"]
    for c in dev["credentials"]:
        s, port = c["service"], c["port"]
        if s == "telnet":
            t = dev["telnet"]
            if t["no_password"]:
                exp.add((ip, port, "no_authentication")); continue
            assert f"{c['user']}:{c['password']}" in order
            # A lockout (per device, logins in parallel) may hide the pair.
            if t["lockout_after"]:
                maybe.add((ip, port))
            else:
                exp.add((ip, port, "default_credential"))
        elif s == "ssh" or (s == "http" and dev["web"]["auth"] in ("basic", "digest")):
            exp.add((ip, port, "default_credential"))
    for w in dev["weaknesses"]:
        if w in ("open_control_panel", "anonymous_mqtt", "exposed_modbus"):
            port = {"anonymous_mqtt": 1883, "exposed_modbus": 502}.get(w) or \
                [s["port"] for s in dev["services"] if s["service"] == "http"][0]
            exp.add((ip, port, w))
decisive = {"default_credential", "no_authentication", "open_control_panel", "anonymous_mqtt", "exposed_modbus"}
g = {x for x in got if x[2] in decisive}
missing = exp - g
extra = {x for x in g - exp if not (x[2] == "no_authentication" and ((x[0], x[1], "open_control_panel") in got or (x[0], x[1], "exposed_modbus") in got))
         and not (x[2] == "default_credential" and (x[0], x[1]) in maybe)}
hardened = {(dev["ip"], h["port"]) for dev in m for h in dev.get("hardened_logins", [])}
flagged_hardened = {x for x in g if x[2] == "default_credential" and (x[0], x[1]) in hardened}
events = [json.loads(l) for l in open(f"{d}/audit.jsonl")]
bad = [e for e in events if e["event"] in ("command", "state_change")]
for x in sorted(missing):
    print("  missing:", *x)
print(f"expected findings {len(exp)}, found {len(exp & g)}, missing {len(missing)}, not in manifest {len(extra)}, "
      f"hardened logins flagged {len(flagged_hardened)}; lockout-hidden pairs {len(maybe)}: "
      f"found {sum(1 for ip,p in maybe if (ip,p,'default_credential') in got)}, lockout reported {sum(1 for ip,p in maybe if (ip,p,'login_lockout') in got)}")
print(f"audit log: {sum(e['event']=='login' for e in events)} logins, {sum(e['event']=='login_failed' for e in events)} failed, {len(bad)} commands or changes")
PY
read -r wall us ss rss < "$out/t-lab"
echo "iotscope: $wall s wall, $(echo "$us + $ss" | bc -l) s CPU, $((rss / 1024)) MB"

[ "${PEERS:-1}" = 0 ] && exit 0   # PEERS=0: the lab part only
echo "== 2. the same $K telnet devices, one dictionary, four tools"
python3 - "$out" "$K" <<'PY'
import json, sys
d, k = sys.argv[1], int(sys.argv[2])
m = json.load(open(f"{d}/m.json"))["devices"]
pick = [x for x in m if x.get("telnet") and any(s["port"] == 23 for s in x["services"])
        and x["telnet"]["lockout_after"] == 0][:k]
open(f"{d}/hosts.txt", "w").write("".join(x["ip"] + "\n" for x in pick))
exp = sorted(f"{x['ip']} {c['user']}:{c['password']}" for x in pick for c in x["credentials"]
             if c["service"] == "telnet" and c["port"] == 23)
open(f"{d}/expected.txt", "w").write("".join(e + "\n" for e in exp))
print(f"{len(pick)} devices, {len(exp)} with a dictionary login (no-password ones log in as root with anything)")
PY
sed 's/:/\//' "$out/creds.txt" > "$out/nmap-creds.txt"
awk -F: '{print ":"$1":"$2}' "$out/creds.txt" > "$out/medusa-combo.txt"
hosts=$(tr '\n' ' ' < "$out/hosts.txt")
count_tries() {  # audit lines for the chosen hosts' port 23 between two line numbers
    python3 - "$out" "$1" "$2" <<'PY'
import json, sys
d, a, b = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hosts = set(open(f"{d}/hosts.txt").read().split())
lines = open(f"{d}/audit.jsonl").read().splitlines()[a:b]
ev = [json.loads(l) for l in lines]
ev = [e for e in ev if e["device"] in hosts and e["port"] == 23]
print(sum(e["event"] == "login_failed" for e in ev), sum(e["event"] == "login" for e in ev))
PY
}
run_tool() {  # NAME COMMAND...
    local name=$1; shift
    local a; a=$(wc -l < "$out/audit.jsonl")
    /usr/bin/time -o "$out/t-$name" -f "%e %U %S %M" timeout "$RUN_TIMEOUT" "$@" >"$out/$name.out" 2>"$out/$name.err" || true
    sleep 1
    local b; b=$(wc -l < "$out/audit.jsonl")
    read -r failed ok < <(count_tries "$a" "$b")
    read -r wall us ss rss < "$out/t-$name"
    printf "%-10s %8s s wall %7.2f s CPU %6d MB  tried %5d (+%d logins)" "$name" "$wall" "$(echo "$us + $ss" | bc -l)" $((rss / 1024)) "$failed" "$ok"
}
found_line() {  # NAME: compare reported hosts with expected hosts
    local name=$1 f=$2
    local exp; exp=$(cut -d' ' -f1 "$out/expected.txt" | sort -u)
    local got; got=$(sort -u "$f")
    printf "  found %d of %d default-credential devices, %d not expected\n" \
        "$(comm -12 <(echo "$exp") <(echo "$got") | grep -c . || true)" "$(echo "$exp" | grep -c .)" \
        "$(comm -13 <(echo "$exp") <(echo "$got") | grep -c . || true)"
}
# shellcheck disable=SC2086
run_tool iotscope "$bin" survey --targets $hosts --ports 23 --rate 0 --timeout 3s --checks credentials \
    --findings "$out/iotscope-findings.jsonl" --output /dev/null
python3 -c "
import json
for l in open('$out/iotscope-findings.jsonl'):
    f = json.loads(l)
    if f['kind'] in ('default_credential', 'no_authentication'): print(f['ip'])" > "$out/iotscope.found"
found_line iotscope "$out/iotscope.found"
run_tool hydra hydra -C "$out/creds.txt" -t 4 -I -o "$out/hydra.txt" -M "$out/hosts.txt" telnet
sed -n 's/.*host: \([0-9.]*\) .*login: .*/\1/p' "$out/hydra.txt" 2>/dev/null > "$out/hydra.found" || : > "$out/hydra.found"
found_line hydra "$out/hydra.found"
run_tool medusa medusa -H "$out/hosts.txt" -C "$out/medusa-combo.txt" -M telnet -t 4 -T "$K" -O "$out/medusa.txt"
sed -n 's/.*Host: \([0-9.]*\) .*\[SUCCESS\].*/\1/p' "$out/medusa.txt" 2>/dev/null > "$out/medusa.found" || : > "$out/medusa.found"
found_line medusa "$out/medusa.found"
run_tool nmap nmap -n -Pn -p23 --script telnet-brute \
    --script-args "brute.credfile=$out/nmap-creds.txt,telnet-brute.autosize=false,brute.threads=4" -oN "$out/nmap.txt" -iL "$out/hosts.txt"
awk '/^Nmap scan report for/{h=$5} /Valid credentials/{print h}' "$out/nmap.txt" | sort -u > "$out/nmap.found"
found_line nmap "$out/nmap.found"
