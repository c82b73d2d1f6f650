#!/usr/bin/env bash
# `make demo`: a sandbox at 0.9.2 under write load, the plan, the stock upgrade to 0.9.3, then
# the load verified. Everything runs on this machine (loopback only) and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MLDB_UPGRADE:-target/release/mldb-upgrade}
work=$(mktemp -d /tmp/mldb-demo.XXXXXX)
load_pid=""
cleanup() {
    [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
    "$bin" sandbox down --dir "$work/cluster" > /dev/null 2>&1 || true
}
trap cleanup EXIT
started=$(date +%s)

echo "== 1. a sandbox cluster at 0.9.2: 2 nameservers, 3 tablets, 1 apiserver, 2 taskmanagers"
"$bin" sandbox up --dir "$work/cluster" --version 0.9.2 --fast
echo
echo "== 2. release 0.9.3 (and its Spark distribution)"
"$bin" sandbox release --version 0.9.3 --out "$work/releases" --tar
release="$work/releases/openmldb-0.9.3-linux.tar.gz"
spark="$work/releases/spark-3.2.1-bin-openmldbspark-0.9.3"
echo
echo "== 3. write load on every table, 100 rows/s, in the background"
echo "   (a write refused while its partition switches leaders is retried for up to 10s, as an application would)"
"$bin" sandbox load --dir "$work/cluster" --rate 100 --duration 30m --retry-for 10s --report "$work/load.jsonl" \
    > "$work/load.out" 2>&1 &
load_pid=$!
sleep 3
echo
echo "== 4. the plan (mldb-upgrade plan): first steps"
"$bin" plan scripts/upgrade.rhai --cluster "$work/cluster/cluster.toml" --set release="$release" --set spark_release="$spark" \
    > "$work/plan.txt"
grep -E '^(target|step|\[dry-run\] would move)' "$work/plan.txt" | head -40
echo "   ... $(grep -c '^step' "$work/plan.txt") steps in all ($work/plan.txt)"
echo
echo "== 5. the upgrade (mldb-upgrade run scripts/upgrade.rhai)"
"$bin" run scripts/upgrade.rhai --cluster "$work/cluster/cluster.toml" --set release="$release" --set spark_release="$spark" \
    | grep -vE '\.\.\.$'
echo
echo "== 6. stop the load and verify every acknowledged row"
kill -INT "$load_pid"
wait "$load_pid" || true
load_pid=""
cat "$work/load.out"
"$bin" sandbox verify --report "$work/load.jsonl" || true
echo
echo "== 7. the cluster afterwards"
"$bin" status --cluster "$work/cluster/cluster.toml"
echo
echo "demo finished in $(( $(date +%s) - started ))s; files in $work"
