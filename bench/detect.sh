#!/usr/bin/env bash
# Detection against scripted campaigns (issue 20): recall, false alerts per
# simulated week and the delay from onset to alert, in buckets.
#
#   bash bench/detect.sh [SEEDS] [DAYS] [PACKETS]      (defaults 5 7 300000)
#
# For each seed 1..SEEDS: `iotscope lab darknet --campaigns default` writes a
# DAYS-long capture of PACKETS background frames (hourly buckets) with one
# Mirai outbreak on 23/2323, one new-port campaign on 37215, one research
# sweep from Censys' published prefix and one multi-victim DDoS backscatter
# burst, onsets moved by the seed and written to the truth file;
# `telescope analyze --db` stores it (running the detectors as it does);
# `detect run` runs them again over the whole store (a replay must add
# nothing); `detect list --format json` is scored by bench/detect_eval.py.
# Goals: every campaign within two buckets of its onset, at most one false
# alert per simulated week, the research sweep never raised.
#
# IOTSCOPE_BIN=PATH skips the build. DETECT_CONFIG=FILE passes a config with
# a [detect] table (parameters to try). DIURNAL=A (0 to 1, default 0) gives
# the background a day-night cycle (`lab darknet --diurnal A`), which the
# seasonal baseline must see through.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5}
days=${2:-7}
packets=${3:-300000}
out=bench/out/detect
mkdir -p "$out"
if [[ -z "${IOTSCOPE_BIN:-}" ]]; then
    cargo build --release -q -p iotscope
    IOTSCOPE_BIN=$PWD/target/release/iotscope
fi
cfg=()
[[ -n "${DETECT_CONFIG:-}" ]] && cfg=(--config "$DETECT_CONFIG")
: > "$out/results.jsonl"
for seed in $(seq 1 "$seeds"); do
    rm -f "$out/c$seed.pcap" "$out/c$seed.pcap.truth.json" "$out/s$seed.db"*
    "$IOTSCOPE_BIN" lab darknet --out "$out/c$seed.pcap" --packets "$packets" \
        --duration "${days}d" --seed "$seed" --campaigns default --diurnal "${DIURNAL:-0}" 2>/dev/null
    "$IOTSCOPE_BIN" "${cfg[@]}" telescope analyze "$out/c$seed.pcap" --db "$out/s$seed.db" \
        --darknet 198.18.0.0/16 --darknet 2001:db8:1::/48 > /dev/null
    before=$("$IOTSCOPE_BIN" detect list --db "$out/s$seed.db" --format json --limit 100000 | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    "$IOTSCOPE_BIN" "${cfg[@]}" detect run --db "$out/s$seed.db" --no-deliver > /dev/null
    "$IOTSCOPE_BIN" detect list --db "$out/s$seed.db" --format json --limit 100000 > "$out/e$seed.json"
    after=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$out/e$seed.json")
    if [[ "$before" != "$after" ]]; then
        echo "seed $seed: the replay changed the episodes ($before -> $after)" >&2
    fi
    python3 bench/detect_eval.py "$out/c$seed.pcap.truth.json" "$out/e$seed.json" | tee -a "$out/results.jsonl"
    rm -f "$out/c$seed.pcap"
done
python3 - "$out/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
days = sum(r["days"] for r in rows)
kinds = {}
for r in rows:
    for c in r["campaigns"]:
        kinds.setdefault(c["kind"], []).append(c)
print()
import os
print(f"{len(rows)} seeds, {days:.1f} simulated days, hourly buckets, day-night cycle {os.environ.get('DIURNAL', '0')}")
print(f"{'campaign':<16} {'recall':>8} {'delay mean':>11} {'delay max':>10}")
for k, cs in kinds.items():
    d = [c["delay"] for c in cs if c["detected"]]
    mean = f"{sum(d) / len(d):.2f}" if d else "-"
    print(f"{k:<16} {len(d)}/{len(cs):<6} {mean:>11} {max(d) if d else '-':>10}")
false = sum(r["false"] for r in rows)
late = sum(r["late"] for r in rows)
print(f"false alerts: {false} ({false / days * 7:.2f} per simulated week); late re-alerts of a campaign: {late}")
print(f"research sweep raised: {sum(r['research_raised'] for r in rows)} times")
PY
