#!/usr/bin/env bash
# `make serve`: Rampart on a local, persistent Prefect server — the server (analytics off), the `rampart` process
# work pool, every deployment in prefect.yaml (with its schedule) and a worker, so the Prefect UI can trigger and
# pause flows and the schedules run. Ctrl-C or SIGTERM stops the worker and the server; the server's database
# stays in PREFECT_HOME, so deployments and run history survive a restart.
#
# Environment (all optional): PREFECT_HOME (default data/prefect, per checkout), RAMPART_PREFECT_HOST (127.0.0.1),
# RAMPART_PREFECT_PORT (4200), RAMPART_WORK_POOL (rampart), VENV (.venv). Everything else in the environment
# (RAMPART_*, credentials, operator tokens) reaches the flow runs through the worker.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PREFECT="$VENV/bin/prefect"
PY="$VENV/bin/python"
HOST="${RAMPART_PREFECT_HOST:-127.0.0.1}"
PORT="${RAMPART_PREFECT_PORT:-4200}"
POOL="${RAMPART_WORK_POOL:-rampart}"
export PREFECT_HOME="${PREFECT_HOME:-$ROOT/data/prefect}"
export PREFECT_API_URL="http://$HOST:$PORT/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1
export RAMPART_HOME="$ROOT"  # prefect.yaml's pull step runs every flow from this checkout
mkdir -p "$PREFECT_HOME"
cd "$ROOT"

say() { echo "[serve] $*" >&2; }
children=()
# Each child leads its own process group (setsid): stopping one stops what it started too (a worker's flow runs).
alive() { local s; s="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1; [[ "$s" != Z* ]]; }
end_group() {  # SIGTERM, up to 20 s to finish (runs in progress are stopped too), then SIGKILL
  local pid="$1"
  kill -TERM -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
stop() {  # the worker first (it reports to the server while it stops), then the server
  trap - EXIT INT TERM
  for ((i = ${#children[@]} - 1; i >= 0; i--)); do end_group "${children[i]}"; done
  say "stopped"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Prefect server on http://$HOST:$PORT (PREFECT_HOME=$PREFECT_HOME, log $PREFECT_HOME/server.log)"
setsid "$PREFECT" server start --host "$HOST" --port "$PORT" >>"$PREFECT_HOME/server.log" 2>&1 &
children+=($!)
"$PY" - "$PREFECT_API_URL" "${children[0]}" <<'PYEOF' || { tail -n 30 "$PREFECT_HOME/server.log" >&2; exit 1; }
import os, sys, time
import httpx
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 180
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("[serve] the Prefect server exited during start-up")
    try:
        if httpx.get(f"{url}/health", timeout=2).status_code == 200:
            sys.exit(0)
    except httpx.HTTPError:
        pass
    time.sleep(0.5)
sys.exit("[serve] the Prefect server did not answer within 180 s")
PYEOF

if "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1; then
  say "work pool $POOL exists"
else
  "$PREFECT" work-pool create "$POOL" --type process >/dev/null
  say "work pool $POOL created (process)"
fi

# Deploy every deployment of prefect.yaml whose flow file exists (a capability still being built is skipped, loudly).
mapfile -t names < <("$PY" - <<'PYEOF'
import pathlib, sys
import yaml
for d in yaml.safe_load(pathlib.Path("prefect.yaml").read_text())["deployments"]:
    path = d["entrypoint"].split(":")[0]
    if pathlib.Path(path).is_file():
        print(d["name"])
    else:
        print(f"[serve] skipping deployment {d['name']}: {path} does not exist yet", file=sys.stderr)
PYEOF
)
args=()
for name in "${names[@]}"; do args+=(--name "$name"); done
"$PREFECT" --no-prompt deploy "${args[@]}" >"$PREFECT_HOME/deploy.log" 2>&1 \
  || { tail -n 40 "$PREFECT_HOME/deploy.log" >&2; exit 1; }
say "deployed: ${names[*]}"

say "worker on pool $POOL; UI and API at http://$HOST:$PORT — Ctrl-C stops everything"
# A script's background jobs start with SIGINT ignored; the worker stops on SIGINT (its SIGTERM handler sends one).
setsid "$PY" -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
  "$PREFECT" worker start --pool "$POOL" --type process &
children+=($!)
wait "${children[1]}"
