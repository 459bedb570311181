#!/usr/bin/env bash
# Requests/s of the shared HTTP listener, measured with wrk (Debian package wrk): /v1/ping
# (the server alone) and /metrics (the server plus the self-monitoring text), 50 keep-alive
# connections, then the agent's peak RSS. Reported, not asserted.
# usage: bench/httpd.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build="${1:-build}"
secs="${2:-5}"
port=19529
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 1; }
conf="$(mktemp)"
REMORA_AGENT_HTTP_LISTEN="127.0.0.1:$port" REMORA_AGENT_LOG_LEVEL=warn \
  "$build/remora" run -c "$conf" >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$conf"' EXIT
sleep 0.5
for path in /v1/ping /metrics; do
  echo "$path:"
  wrk -t1 -c50 -d"${secs}s" "http://127.0.0.1:$port$path" | grep -E "Latency|Requests/sec"
done
grep VmHWM "/proc/$pid/status"
