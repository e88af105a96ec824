#!/usr/bin/env bash
# The relay's instructions per event, counted by valgrind's callgrind: a figure that does not move
# with how busy the machine is (the same binary gives the same count within a fraction of a
# percent), where this machine's rates move by 20% from one run to the next (BENCHMARKS.md).
#
#   benches/instructions/run.sh [COUNT] NEW_BINARY [OLD_BINARY]
#
# Each binary runs a relay under callgrind on a SQLite store of its own, delivering to a stand-in
# org (org.py, outside valgrind). Counting starts once the relay is ready and stops once the org
# has COUNT deliveries (default 1,000): each event's ingest (Basic auth, signature, envelope,
# durable insert, answer) and its delivery (claim, token, HTTP exchange, outcome). NEW_BINARY's
# `trigger` sends the events, one at a time, to both relays alike.
#
# valgrind's CPU hides SHA-NI, so SHA-256 runs its portable code there: the figure without
# `sha2::sha256::soft::compress` (inlined into `sha2::sha256::compress256` when the whole program
# is optimized at once, as the release profile does) is the one nearer what runs on the machine.
# INSTRUCTIONS_KEEP=DIR keeps each run's profile there (DIR/new.callgrind.out), for
# callgrind_annotate.
set -euo pipefail

count=1000
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then count=$1; shift; fi
[[ $# -ge 1 ]] || { echo "usage: $0 [COUNT] NEW_BINARY [OLD_BINARY]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
for binary in "$@"; do [[ -x "$binary" ]] || { echo "no binary at $binary" >&2; exit 2; }; done
new_binary="$(realpath "$1")"
old_binary="$([[ $# -ge 2 ]] && realpath "$2" || true)"
trigger_binary="$new_binary"
work="$(mktemp -d)"
trap 'pkill -f "$here/org.py" 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_until() { # wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    (( SECONDS < deadline )) || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.2
  done
}
relay_ready() { # relay_ready PID PORT: fails the run at once if the relay has stopped
  kill -0 "$1" 2>/dev/null || { echo "the relay stopped: $(tail -3 "$dir/relay.log")" >&2; exit 1; }
  curl -sf -o /dev/null "http://127.0.0.1:$2/readyz"
}
delivered_at_least() { python3 - "$1" "$2" <<'EOF'
import json, sys, urllib.request
got = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/delivered"))["delivered"]
sys.exit(0 if got >= int(sys.argv[2]) else 1)
EOF
}

# count_one LABEL BINARY: prints "LABEL total_per_event without_sha_per_event"
count_one() {
  local label=$1 binary=$2 dir="$work/$1" org_port relay_port
  mkdir -p "$dir"
  org_port=$(free_port); relay_port=$(free_port)
  python3 "$here/org.py" "$org_port" >"$dir/org.log" 2>&1 & local org=$!
  wait_until 30 curl -sf -o /dev/null "http://127.0.0.1:$org_port/delivered"
  export DRSF__RELAY__LISTEN="127.0.0.1:$relay_port" DRSF__STORAGE__URL="sqlite://$dir/relay.db" \
    DRSF__SALESFORCE__MY_DOMAIN_URL="http://127.0.0.1:$org_port" \
    DRSF__SALESFORCE__TOKEN_URL="http://127.0.0.1:$org_port/services/oauth2/token" \
    DRSF__SALESFORCE__CLIENT_ID=instructions DRSF__SALESFORCE__CLIENT_SECRET=instructions-secret \
    DRSF__SALESFORCE__USERNAME=instructions@example.com DRSF__SALESFORCE__PASSWORD=instructions-password \
    DRSF__RELAY__BASIC_USERNAME=dr DRSF__RELAY__BASIC_PASSWORD=instructions-basic-password \
    DRSF__DIGITAL_RIVER__SIGNING_SECRETS=whsec_instructions
  (cd "$dir" && exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$dir/callgrind.out" \
    "$binary" --log-format json relay >"$dir/relay.log" 2>&1) &
  local relay=$!
  wait_until 300 relay_ready "$relay" "$relay_port"
  callgrind_control -i on "$relay" >/dev/null 2>&1
  "$trigger_binary" trigger order.accepted --count "$count" --url "http://127.0.0.1:$relay_port" \
    --output json >"$dir/trigger.json"
  wait_until 600 delivered_at_least "$org_port" "$count"
  callgrind_control -i off "$relay" >/dev/null 2>&1
  kill -INT "$relay"; wait "$relay" || true
  kill "$org"; wait "$org" 2>/dev/null || true
  local total sha
  read -r total sha < <(callgrind_annotate "$dir/callgrind.out" | awk '
    /PROGRAM TOTALS/ {gsub(",", "", $1); total = $1}
    /sha2::sha256::(soft::compress|compress256)/ {gsub(",", "", $1); sha += $1}
    END {print total, sha + 0}')
  [[ -n "${INSTRUCTIONS_KEEP:-}" ]] && mkdir -p "$INSTRUCTIONS_KEEP" && cp "$dir/callgrind.out" "$INSTRUCTIONS_KEEP/$label.callgrind.out"
  echo "$label $((total / count)) $(((total - sha) / count))"
}

new=$(count_one new "$new_binary")
old=""
[[ -n "$old_binary" ]] && old=$(count_one old "$old_binary")
echo "instructions per event ingested and delivered ($count events, one at a time):"
echo "| binary | all | without SHA-256's portable code |"
echo "|---|---|---|"
read -r _ new_all new_rest <<<"$new"
echo "| new | $new_all | $new_rest |"
if [[ -n "$old" ]]; then
  read -r _ old_all old_rest <<<"$old"
  echo "| old | $old_all | $old_rest |"
  python3 -c "import sys; a,b,c,d=map(int,sys.argv[1:]); print(f'| new/old | {a/c:.3f}x | {b/d:.3f}x |')" \
    "$new_all" "$new_rest" "$old_all" "$old_rest"
fi
