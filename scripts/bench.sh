#!/usr/bin/env bash
# make bench: the Go benchmarks, then the built binaries end to end against a
# simulated vCenter of generated VMs, as one table. BENCH_VMS=10000 for the
# large fleet (seeding it takes minutes and about 1 GB for the simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
BIN=${BIN:-bin}
VMS=${BENCH_VMS:-1000}
OUT=${OUT:-bench}
rm -rf "$OUT" && mkdir -p "$OUT/sim"
case $VMS in 1000) FLEET=testdata/fleets/bench-1k.yaml ;; 10000) FLEET=testdata/fleets/bench-10k.yaml ;;
  *) echo "BENCH_VMS must be 1000 or 10000" >&2; exit 2 ;; esac

if [ -z "${SKIP_GO_BENCH:-}" ]; then
echo "== go test -bench (vCenter collection at $VMS VMs: floor, snapwarden, per-VM; ledger; report; cycle)"
SNAPWARDEN_BENCH_VMS=$VMS go test -run '^$' -bench . -benchtime 3x -benchmem ./internal/vsphere 2>&1 \
  | grep -v FileAlreadyExists | tee "$OUT/vsphere.txt" | grep -E '^Benchmark|^ok'
# The ledger's benchmarks run on SQLite, then on PostgreSQL (SNAPWARDEN_TEST_POSTGRES, see Makefile).
go test -run '^$' -bench . -skip Samples30Days -benchtime 3x -benchmem ./internal/ledger ./internal/report 2>&1 | grep -E '^Benchmark|^ok|^ledger:'
# 30 simulated days of hourly samples take minutes: once.
go test -run '^$' -bench Samples30Days -benchtime 1x ./internal/ledger 2>&1 | grep -E '^Benchmark|^ok'
echo "== takeover: two serve processes on PostgreSQL, the leader killed (-9) 10 times"
go test -run '^$' -bench Takeover -benchtime 10x ./cmd/snapwarden 2>&1 | grep -E '^Benchmark|^ok|no PostgreSQL'
SNAPWARDEN_BENCH_VMS=$VMS go test -run '^$' -bench . -benchtime 2x -benchmem ./internal/cycle 2>&1 \
  | grep -v FileAlreadyExists | grep -E '^Benchmark|^ok'
go test -run '^$' -bench . -benchtime 2x -benchmem ./internal/notify 2>&1 | grep -E '^Benchmark|^ok'
fi

echo
echo "== the binaries: snapwarden report and run against $FLEET over HTTPS (wall time, peak RSS, calls)"
"$BIN/snapwarden-sim" --fleet "$FLEET" --dir "$OUT/sim" --mail-dir "$OUT/mail" \
  --config-template testdata/demo/snapwarden.yaml.tmpl --config-out "$OUT/snapwarden.yaml" 2>"$OUT/sim.log" &
SIM=$!
trap 'kill -TERM $SIM 2>/dev/null; wait $SIM 2>/dev/null || true' EXIT
until [ -f "$OUT/sim/ready" ]; do
  kill -0 $SIM 2>/dev/null || { cat "$OUT/sim.log" >&2; exit 1; }
  sleep 0.5
done
sed -i 's/format: console/format: json/; s/level: info/level: debug/' "$OUT/snapwarden.yaml"

calc() { awk "BEGIN { printf \"%.2f\", $* }"; }
measure() { # name, then the command
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$OUT/$name.time" "$@" >/dev/null 2>"$OUT/$name.log" || true
  read -r secs kib < <(tail -1 "$OUT/$name.time")  # time prepends a line when the command fails
  calls=$(grep -o '"http_requests":[0-9]*' "$OUT/$name.log" | head -1 | cut -d: -f2 || true)
  printf '| %-22s | %6d | %8.2f s | %8.1f MiB | %5s |\n' "$name" "$VMS" "$secs" "$(calc "$kib/1024")" "${calls:--}"
}
touch "$OUT/vsphere.txt"
floor=$(grep -E "^BenchmarkFloor/vms=$VMS/delay=0ms" "$OUT/vsphere.txt" | awk '{print $3/1e9}' || true)
ours=$(grep -E "^BenchmarkCollect/vms=$VMS/delay=0ms/ledger-knows=true" "$OUT/vsphere.txt" | awk '{print $3/1e9}' || true)
pervm=$(grep -E "^BenchmarkPerVM/vms=$VMS/delay=2ms" "$OUT/vsphere.txt" | awk '{print $3/1e9}' || true)
ours2=$(grep -E "^BenchmarkCollect/vms=$VMS/delay=2ms/ledger-knows=true" "$OUT/vsphere.txt" | awk '{print $3/1e9}' || true)
echo
echo "| what                   |    VMs |      time |     peak RSS | calls |"
echo "|------------------------|--------|-----------|--------------|-------|"
if [ -n "$floor" ]; then
  printf '| %-22s | %6d | %8.2f s | %12s | %5s |\n' "floor (bare retrieve)" "$VMS" "$floor" "-" "3"
  printf '| %-22s | %6d | %8.2f s | %12s | %5s |\n' "collect (steady)" "$VMS" "$ours" "-" "-"
fi
measure "report (first, new)" "$BIN/snapwarden" --config "$OUT/snapwarden.yaml" report --format json
measure "run (first cycle)" "$BIN/snapwarden" --config "$OUT/snapwarden.yaml" run
measure "report (ledger knows)" "$BIN/snapwarden" --config "$OUT/snapwarden.yaml" report --format json
measure "run (steady cycle)" "$BIN/snapwarden" --config "$OUT/snapwarden.yaml" run
# serve: a full read through its watcher, then steady cycles patched from
# vCenter's updates (vcsim's own collector here: waits are slow at scale,
# cycles are not); peak RSS after three cycles.
sed 's/^schedule: .*/schedule: "@every 20s"/' "$OUT/snapwarden.yaml" >"$OUT/serve.yaml"
"$BIN/snapwarden" --config "$OUT/serve.yaml" serve >/dev/null 2>"$OUT/serve.log" &
SERVE=$!
began=$(date +%s.%N)
until [ "$(grep -c 'last cycle' "$OUT/serve.log" || true)" -ge 3 ]; do
  kill -0 $SERVE 2>/dev/null || break
  sleep 0.5
done
kib=$(awk '/VmHWM/{print $2}' /proc/$SERVE/status 2>/dev/null || echo 0)
kill -TERM $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true
printf '| %-22s | %6d | %8.2f s | %8.1f MiB | %5s |\n' "serve (3 cycles)" "$VMS" "$(calc "$(date +%s.%N)-$began")" "$(calc "$kib/1024")" "-"
[ -n "$floor" ] && printf 'collect/floor ratio: %.2f   with +2 ms per call: per-VM %.2f s vs snapwarden %.2f s (%.1fx)\n' \
  "$(calc "$ours/$floor")" "$pervm" "$ours2" "$(calc "$pervm/$ours2")"
watched=$(grep -E "^BenchmarkWatchedCycle/vms=$VMS/changed" "$OUT/vsphere.txt" | awk '{print $3/1e9, $5, $7}' || true)
notice=$(grep -E "^BenchmarkWatchedCycle/vms=$VMS/notice" "$OUT/vsphere.txt" | awk '{print $5}' || true)
if [ -n "$floor" ] && [ -n "$watched" ]; then
  read -r wsecs wcalls wcopy <<<"$watched"
  printf 'watched steady cycle (1%% of VMs changed, simfleet.FastWait collector): %.3f s = %.3fx floor, %s calls, copy %s MiB; new snapshot noticed in %s ms at worst\n' \
    "$wsecs" "$(calc "$wsecs/$floor")" "$wcalls" "$wcopy" "${notice:--}"
fi
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3)"
