#!/usr/bin/env bash
# The store's engines side by side (issue 19): SQLite and PostgreSQL on the
# same page-cached captures.
#
#   bash bench/store.sh [PACKETS] [SEED]      # default 10,000,000 frames
#
# Generates (once, cached under bench/out/) the darknet capture and a
# spoofed-source flood with `iotscope lab darknet`, starts a throw-away
# PostgreSQL server (scripts/pg-scratch.sh, data under bench/out/pg; fsync
# off: a scratch server, so the figures are the engines' work, not the
# disk's), then for each capture runs
#   telescope analyze (no store), analyze --db SQLite, analyze --db PostgreSQL,
#   telescope report over each store,
# and `store copy` of the SQLite store into PostgreSQL (bulk COPY): rows per
# second. Prints wall and CPU seconds, peak memory and the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-10000000}
seed=${2:-1}
out=bench/out
mkdir -p "$out"
cargo build --release -q -p iotscope
bin=target/release/iotscope
url=$(scripts/pg-scratch.sh start "$out/pg")
trap 'scripts/pg-scratch.sh stop "$out/pg"' EXIT
base=${url%/*}
export PGOPTIONS='-c client_min_messages=warning'

declare -A WALL
run() {  # key name command...
    local key=$1 name=$2; shift 2
    /usr/bin/time -o "$out/time.txt" -f "%e %U %S %M" "$@" > "$out/$key.stdout" 2> "$out/$key.stderr" \
        || { echo "$name failed, see $out/$key.stderr" >&2; return 1; }
    read -r wall user sys rss < "$out/time.txt"
    WALL[$key]=$wall
    printf '%-42s %7.2f s wall %7.2f s CPU %8.1f MB peak\n' \
        "$name" "$wall" "$(echo "$user + $sys" | bc -l)" "$(echo "$rss/1024" | bc -l)"
}
fresh_db() {  # name -> URL of an empty database
    psql -q "$url" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
    echo "$base/$1"
}

echo "PostgreSQL $(psql -tA "$url" -c 'SHOW server_version'), $(nproc) cores"
for kind in capture flood; do
    file="$out/darknet-$packets-$seed.pcap"
    flag=()
    if [ $kind = flood ]; then
        file="$out/flood-$packets-$seed.pcap"
        flag=(--flood)
    fi
    if [ ! -s "$file" ]; then
        echo "generating $file ..." >&2
        "$bin" lab darknet --out "$file" --packets "$packets" --seed "$seed" "${flag[@]}"
    fi
    cat "$file" > /dev/null
    lite="$out/store-bench-$kind.db"
    rm -f "$lite" "$lite-wal" "$lite-shm"
    pg=$(fresh_db "bench_$kind")
    copy=$(fresh_db "bench_copy_$kind")
    echo "$kind: $file ($packets frames)"
    run "mem-$kind" "  analyze (no store)" "$bin" telescope analyze "$file" --format json --no-detect
    run "lite-$kind" "  analyze --db SQLite" "$bin" telescope analyze "$file" --format json --no-detect --db "$lite"
    run "pg-$kind" "  analyze --db PostgreSQL" "$bin" telescope analyze "$file" --format json --no-detect --db "$pg"
    run "rlite-$kind" "  telescope report, SQLite" "$bin" telescope report --format json --db "$lite"
    run "rpg-$kind" "  telescope report, PostgreSQL" "$bin" telescope report --format json --db "$pg"
    cmp -s "$out/rlite-$kind.stdout" "$out/rpg-$kind.stdout" \
        && echo "  the two reports are byte-identical" \
        || { echo "  THE REPORTS DIFFER: $out/rlite-$kind.stdout $out/rpg-$kind.stdout" >&2; exit 1; }
    run "copy-$kind" "  store copy SQLite -> PostgreSQL" "$bin" store copy --format json --from "$lite" --to "$copy"
    rows=$(python3 -c 'import json,sys; print(sum(t["rows"] for t in json.load(open(sys.argv[1]))["tables"]))' "$out/copy-$kind.stdout")
    bytes=$(psql -tA "$copy" -c "SELECT pg_database_size(current_database())")
    printf '  copy: %d rows (blocks of packed records), %.0f rows/s, %.1f MB/s into PostgreSQL (COPY BINARY, verified)\n' \
        "$rows" "$(echo "$rows / ${WALL[copy-$kind]}" | bc -l)" "$(echo "$bytes / 1048576 / ${WALL[copy-$kind]}" | bc -l)"
    printf '  analyze --db: SQLite %.2fx, PostgreSQL %.2fx the time without a store; PostgreSQL/SQLite %.2fx\n' \
        "$(echo "${WALL[lite-$kind]} / ${WALL[mem-$kind]}" | bc -l)" \
        "$(echo "${WALL[pg-$kind]} / ${WALL[mem-$kind]}" | bc -l)" \
        "$(echo "${WALL[pg-$kind]} / ${WALL[lite-$kind]}" | bc -l)"
    printf '  report: PostgreSQL/SQLite %.2fx\n' "$(echo "${WALL[rpg-$kind]} / ${WALL[rlite-$kind]}" | bc -l)"
done
