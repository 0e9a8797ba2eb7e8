#!/usr/bin/env bash
# make demo: start the simulated vCenter and SMTP sink, show the dry-run
# report, run cycles that send real mail to the sink, and stop by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
OUT=${OUT:-demo}

rm -rf "$OUT"
mkdir -p "$OUT/sim" "$OUT/mail"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

"$BIN/snapwarden-sim" --fleet testdata/fleets/demo.yaml --dir "$OUT/sim" --mail-dir "$OUT/mail" \
  --config-template testdata/demo/snapwarden.yaml.tmpl --config-out "$OUT/snapwarden.yaml" \
  2>"$OUT/sim.log" &
SIM=$!
trap 'kill -TERM $SIM 2>/dev/null; wait $SIM 2>/dev/null || true' EXIT

for _ in $(seq 1 600); do
  [ -f "$OUT/sim/ready" ] && break
  kill -0 $SIM 2>/dev/null || { cat "$OUT/sim.log" >&2; echo "demo: the simulator stopped" >&2; exit 1; }
  sleep 0.2
done
[ -f "$OUT/sim/ready" ] || { echo "demo: the simulator did not get ready in 120 s" >&2; exit 1; }
cat "$OUT/sim.log"

CFG="$OUT/snapwarden.yaml"
SW() { "$BIN/snapwarden" --config "$CFG" "$@"; }

say "snapwarden check: config, vCenter login over verified TLS, SMTP"
SW check

say "snapwarden report (dry-run: changes nothing)"
SW report
for f in json csv markdown html; do
  ext=$f; [ $f = markdown ] && ext=md
  SW report --format $f --output "$OUT/report.$ext"
done
say "snapwarden report --at (forecast two days ahead) --state overdue"
SW report --at "$(date -u -d '+2 days' +%Y-%m-%dT%H:%M:%SZ)" --state overdue

say "snapwarden run: one cycle (customer digests and the support escalation go to the SMTP sink)"
SW run
say "snapwarden run again: nothing new is sent"
SW run

say "an enforce cycle: globex's policy is action: consolidate, and its overdue snapshot was warned about above"
# A snapshot is committed only min_notice after its owner's first delivered
# notice (24h by default). The demo sets 5s so the commit can be watched: it
# waits out those seconds since the first run's digest.
sleep 5
SNAPWARDEN_ENFORCEMENT_MODE=enforce SNAPWARDEN_ENFORCEMENT_MIN_NOTICE=5s SW run
say "snapwarden history --vm globex-web01: the notice, the escalation while it was blocked, the commit"
SW history --vm globex-web01

say "the customer acts from the email: snapwarden serve offers the signed links on 127.0.0.1"
# serve's first cycle runs at once (dry-run, so it sends nothing new); the
# links are served by its public listener (self_service.listen).
"$BIN/snapwarden" --config "$CFG" serve 2>"$OUT/serve.log" &
SERVE=$!
trap 'kill -TERM $SERVE $SIM 2>/dev/null; wait $SERVE $SIM 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  grep -q "serving self-service links" "$OUT/serve.log" && break
  kill -0 $SERVE 2>/dev/null || { cat "$OUT/serve.log" >&2; echo "demo: snapwarden serve stopped" >&2; exit 1; }
  sleep 0.2
done
grep -q "serving self-service links" "$OUT/serve.log" || { echo "demo: serve did not start its public listener in 30 s" >&2; exit 1; }
LINKS() { "$BIN/snapwarden-sim" links --key-file "$OUT/sim/link.key" "$@" "$OUT"/mail/*.eml; }
OPEN() { "$BIN/snapwarden-sim" open "$@"; }
echo "acme's links in its digest (snapwarden-sim links checks each against the key):"
LINKS --vm acme-db01; LINKS --vm acme-web02
EXTEND=$(LINKS --vm acme-db01 --action extend)
COMMIT=$(LINKS --vm acme-web02 --action commit)
say "ACME keeps acme-db01's snapshot longer: the link's page (GET changes nothing), then its button (POST)"
OPEN "$EXTEND"
OPEN --post "$EXTEND"
say "ACME asks to commit acme-web02's snapshot now"
OPEN "$COMMIT"
OPEN --post "$COMMIT"
kill -TERM $SERVE
wait $SERVE || true

say "snapwarden report: acme-db01's deadline moved (extended_until), acme-web02 is still there until the next enforce cycle"
# The JSON report has one key a line; awk (always there, unlike jq) shows a few keys of the two snapshots.
SW report --format json | awk '
  /^    [{]/ { vm = ""; line = "" }
  /"(vm|snapshot|state|next_action|next_action_at|deadline|extended_until)":/ {
    k = $1; gsub(/[":]/, "", k); v = $0; sub(/^[^:]*: /, "", v); gsub(/[",]/, "", v)
    if (k == "vm") vm = v
    line = line "  " k "=" v }
  /^    [}]/ && (vm == "acme-db01" || vm == "acme-web02") { print substr(line, 3) }'
say "an enforce cycle commits acme-web02's snapshot at ACME's request (no deadline, no min_notice: the request is the notice)"
SNAPWARDEN_ENFORCEMENT_MODE=enforce SW run
say "snapwarden history of the two VMs: the requests and what came of them"
SW history --vm acme-db01
SW history --vm acme-web02

say "what was written"
ls -l "$OUT"/report.* "$OUT"/mail/
echo
echo "Open $OUT/report.html and $OUT/mail/*.html in a browser; $OUT/mail/*.eml are the messages as sent."
