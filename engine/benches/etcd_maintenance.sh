#!/bin/sh
# etcd's side of the `maintenance` bench: the same data (N keys of 256 B, the first half
# deleted), then physical compaction and defrag while a client writes and reads (RATE
# requests/s, default 600: one put to two serializable single-key ranges, open loop; etcd on
# this 2-vCPU machine saturates a core near 3,000 such requests/s), recording every
# operation's latency (strata-bench's HDR histogram: p50/p99/max).
#
#   cargo build --release -p strata-bench
#   KEYS=2500000 sh engine/benches/etcd_maintenance.sh
#
# Needs /usr/bin/etcd and /usr/bin/etcdctl (Debian's etcd-server/etcd-client, 3.4.23).
set -eu
KEYS=${KEYS:-2500000}
RATE=${RATE:-600}
HALF=$((KEYS / 2))
B=${B:-target/release/strata-bench}
DIR=${DIR:-/tmp/strata-etcd-maintenance}
EP=127.0.0.1:23790
export ETCDCTL_API=3
rm -rf "$DIR"
mkdir -p "$DIR"
/usr/bin/etcd --name maint --data-dir "$DIR/data" \
    --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
    --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
    --initial-cluster maint=http://127.0.0.1:23800 \
    --quota-backend-bytes 8589934592 >"$DIR/etcd.log" 2>&1 &
ETCD=$!
trap 'kill $ETCD 2>/dev/null || true' EXIT
sleep 2
ctl() { /usr/bin/etcdctl --endpoints "$EP" "$@"; }
size() { stat -c %s "$DIR/data/member/snap/db"; }

t=$(date +%s)
$B put --endpoints $EP --clients 100 --conns 10 --total "$KEYS" --key-size 16 --val-size 256 \
    --key-space-size "$KEYS" --sequential-keys --no-progress >"$DIR/load.md"
$B delete --endpoints $EP --clients 100 --conns 10 --total "$HALF" --key-size 16 \
    --key-space-size "$HALF" --sequential-keys --no-progress >"$DIR/delete.md"
echo "loaded $KEYS keys and deleted $HALF in $(( $(date +%s) - t )) s; db $(size) bytes"

REV=$(ctl endpoint status -w json | sed 's/.*"revision":\([0-9]*\).*/\1/')
load() { # $1: seconds
    $B mixed --endpoints $EP --clients 20 --conns 4 --rate "$RATE" --duration "$1s" \
        --mix put=1,range-s=2 --key-size 16 --val-size 256 --key-space-size "$KEYS" \
        --no-progress --pid $ETCD
}

echo "## baseline (10 s)"
load 10

echo "## physical compaction at revision $REV"
load "${COMPACT_WINDOW:-90}" >"$DIR/compact.md" &
L=$!
sleep 5
t0=$(date +%s.%N)
ctl compact --physical --command-timeout 600s "$REV"
t1=$(date +%s.%N)
wait $L
cat "$DIR/compact.md"
echo "etcdctl compact --physical took $(echo "$t1 - $t0" | bc) s; db $(size) bytes"

echo "## defrag"
load "${DEFRAG_WINDOW:-60}" >"$DIR/defrag.md" &
L=$!
sleep 5
before=$(size)
t0=$(date +%s.%N)
ctl defrag --command-timeout 600s
t1=$(date +%s.%N)
wait $L
cat "$DIR/defrag.md"
echo "etcdctl defrag took $(echo "$t1 - $t0" | bc) s; db $before -> $(size) bytes"
grep -E '"RssAnon|"RssFile' /proc/$ETCD/status 2>/dev/null || grep -E 'RssAnon|RssFile|VmRSS' /proc/$ETCD/status
