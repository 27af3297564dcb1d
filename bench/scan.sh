#!/usr/bin/env bash
# SYN-mode survey beside zmap, masscan and `nmap -sS`, on the same footing:
# the shared isolated scan network (two network namespaces joined by one veth,
# no route out, a /16 of 198.18.0.0/16 with a known set of open pairs on six
# ports, the rest refusing or silent) and the shared runner that measures
# every tool the same way (packets on the link, CPU, peak memory, accuracy).
# The send floor (a bare AF_PACKET sendmmsg loop, send-floor.c) runs in the
# same session, so CPU per probe can be put beside it.
#
#   sudo bash bench/scan.sh [quick]      # needs root, nft, zmap, masscan, nmap, gcc, GNU time
#   SHARED_BENCH=DIR  where scan-testnet.sh, scan-bench.sh, send-floor.c live
#                     (default: ../shared/bench beside the project)
# Results: one TSV row per run in $RESULTS (default /tmp/scan-testnet/results.tsv),
# then a table. Columns are explained in scan-bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${SHARED_BENCH:-$root/../shared/bench}
[ -x "$shared/scan-bench.sh" ] || [ -f "$shared/scan-bench.sh" ] || { echo "no $shared/scan-bench.sh: set SHARED_BENCH" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces, raw sockets)" >&2; exit 1; }
cargo build --release -q -p iotscope
bin=$root/target/release/iotscope
export RESULTS=${RESULTS:-/tmp/scan-testnet/results.tsv}
rm -f "$RESULTS"
bash "$shared/scan-testnet.sh" up
trap 'bash "$shared/scan-testnet.sh" down >/dev/null 2>&1 || true' EXIT
P1=23
P6=23,2323,22,80,8080,8081

ours() {  # RATE PORTS LABEL [extra args]
    local rate=$1 ports=$2 label=$3; shift 3
    CUSTOM_CMD="$bin survey --mode syn --no-grab --targets @TARGET@ --ports @PORTS@ --rate @RATE@ --interface @IFACE@ --timeout 3s $* --output @OUT@.jsonl 2>@OUT@.err; sed -n 's/.*\"ip\":\"\([^\"]*\)\",\"port\":\([0-9]*\).*/\1 \2/p' @OUT@.jsonl > @OUT@" \
        bash "$shared/scan-bench.sh" run custom "$rate" "$ports" "$label"
}

# The floor: 393,216 SYN frames (a /16 x 6) with nothing else to do.
gcc -O2 -o /tmp/scan-testnet/send-floor "$shared/send-floor.c"
CUSTOM_CMD="/tmp/scan-testnet/send-floor @IFACE@ 393216 64 0 @GWMAC@ > @OUT@.log; : > @OUT@" \
    bash "$shared/scan-bench.sh" run custom 0 "$P1" floor-393216

rates="100000 380000"
[ "${1:-}" = quick ] || rates="100000 200000 380000"
for r in $rates; do
    ours "$r" "$P6" "iotscope-$r-p6"
    bash "$shared/scan-bench.sh" run masscan "$r" "$P6" "masscan-$r-p6"
    bash "$shared/scan-bench.sh" run zmap "$r" "$P6" "zmap-$r-p6"
done
ours 0 "$P6" iotscope-max-p6
ours 0 "$P6" iotscope-max-p6-retry1 --retries 1
bash "$shared/scan-bench.sh" run masscan max "$P6" masscan-max-p6
bash "$shared/scan-bench.sh" run zmap max "$P6" zmap-max-p6
[ "${1:-}" = quick ] || bash "$shared/scan-bench.sh" run nmap max "$P6" nmap-max-p6
ours 0 "$P1" iotscope-max-p1
bash "$shared/scan-bench.sh" run zmap max "$P1" zmap-max-p1

echo
column -t -s $'\t' "$RESULTS"
echo
# CPU seconds per million probes (user + system of the scanner process).
awk -F'\t' 'NR>1 && $5>0 { printf "%-24s %8.2f CPU-s per million frames sent, found %s/%s, false positives %s\n", $1, ($10+$11)*1e6/$5, $14, $15, $16 }' "$RESULTS"
