#!/usr/bin/env bash
# Another tenant's single-prediction latency with and without one tenant's flood of heavy calls (issue 17, item 15).
#   scripts/heavy-bench.sh [rounds]      (default 3; prints one JSON line per run and a summary; writes heavy-bench.jsonl)
# One embedded `lens serve` on loopback with two tenants: "bench" predicts (`lens bench`, single calls over HTTP) and "heavy"
# floods: FLOOD_CALLERS (8) curl loops, each posting `simulate` of FLOOD_REQUESTS (1,000,000) generated requests again as soon as
# the last one answers, for as long as the bench runs. Conditions alternate in each round (quiet, flood), after an unrecorded
# warm-up round of both, so that the spread over rounds is the noise floor. The flood's answers are counted by status (200: ran;
# 429: refused by the tenant's heavy-call budget; the caller then waits 2 s, as Retry-After asks). Silo settings pass through the environment (e.g. Lens__Grains__
# MaxHeavyCallsPerTenant=8 admits all eight). Sizes: BENCH_REQUESTS (20000 calls), BENCH_CLIENTS (4), BENCH_WARMUP (2000).
# Ports: HTTP_PORT/SILO_PORT/GATEWAY_PORT (5185/11185/30185). Everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [rounds]" >&2; exit 2; }
out=${BENCH_OUT:-heavy-bench.jsonl}
requests=${BENCH_REQUESTS:-20000}
clients=${BENCH_CLIENTS:-4}
warmup=${BENCH_WARMUP:-2000}
callers=${FLOOD_CALLERS:-8}
flood_requests=${FLOOD_REQUESTS:-1000000}
http_port=${HTTP_PORT:-5185}

# LENS_DLL: another build's lens.dll to measure (e.g. an older commit's, for a before figure); else this tree's, built here.
lens_dll=${LENS_DLL:-src/Lens.Cli/bin/Release/net10.0/lens.dll}
[ -n "${LENS_DLL:-}" ] || dotnet build -c Release src/Lens.Cli -v quiet -nologo >/dev/null
lens() { dotnet "$lens_dll" "$@"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/lens-heavy-bench.XXXXXX")
export LENS_BENCH_KEY=bench-key-0123456789abcdef LENS_HEAVY_KEY=heavy-key-0123456789abcdef
server=
flooders=()
stop_flood() {
  rm -f "$work/flooding"
  local pid
  for pid in "${flooders[@]}"; do wait "$pid" 2>/dev/null || true; done
  flooders=()
}
cleanup() {
  stop_flood
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The replayed model of scripts/bench.sh: NxD buckets, max context 4096, seq len 8192.
lens plan --preset nxdi --max-context 4096 --seq-len 8192 --out "$work/plan.csv" >/dev/null
awk -F, 'NR==1{print "bucket,input_len,output_len,e2e_ms"; next} {print $1","$2","$3","(20+$2*0.05+($3-1)*(1+$2/4000))}' "$work/plan.csv" > "$work/m.csv"
lens fit --preset nxdi --max-context 4096 --seq-len 8192 --measurements "$work/m.csv" --out "$work/model.json" >/dev/null
python3 - "$work" "$flood_requests" <<'PY'
import json, sys
work, n = sys.argv[1], int(sys.argv[2])
spec = {"name": "bench", "model": "replayed", "prefillBuckets": [128, 256, 512, 1024, 2048, 4096],
        "decodeBuckets": [128, 256, 512, 1024, 2048, 4096, 8192],
        "backend": {"kind": "replay", "modelJson": open(f"{work}/model.json").read()}}
json.dump(spec, open(f"{work}/spec.json", "w"))
json.dump({"workload": {"requestsPerSecond": 50, "count": n, "inputDist": "uniform:1-2000", "outputDist": "uniform:1-1000"}},
          open(f"{work}/simulate.json", "w"))
PY

Lens__Tenants__heavy__ApiKey=$LENS_HEAVY_KEY dotnet "$lens_dll" serve --tenant bench --api-key-env LENS_BENCH_KEY \
  --http-port "$http_port" --silo-port "${SILO_PORT:-11185}" --gateway-port "${GATEWAY_PORT:-30185}" >"$work/serve.log" 2>&1 &
server=$!
base=http://127.0.0.1:$http_port
for _ in $(seq 1 240); do curl -sf "$base/health" >/dev/null 2>&1 && break; kill -0 "$server" || { tail "$work/serve.log" >&2; exit 1; }; sleep 0.5; done
for tenant in BENCH HEAVY; do
  lens profile --server "$base" --api-key-env "LENS_${tenant}_KEY" --device d0 --spec "$work/spec.json" --wait >/dev/null
done
deployment=$(lens status --server "$base" --api-key-env LENS_BENCH_KEY --device d0 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

flood() { # caller index: simulate again and again while the flag file exists; one status code per line
  local code
  while [ -f "$work/flooding" ]; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "X-Api-Key: $LENS_HEAVY_KEY" -H 'Content-Type: application/json' \
      --data-binary "@$work/simulate.json" "$base/v1/devices/d0/deployments/$deployment/simulate" || true)
    echo "$code" >>"$work/flood-$1.codes"
    [ "$code" != 429 ] || sleep 2 # as the SDK does: wait what Retry-After asks
  done
}

run() { # round condition record-file
  local codes=""
  rm -f "$work"/flood-*.codes
  if [ "$2" = flood ]; then
    touch "$work/flooding"
    for i in $(seq 1 "$callers"); do flood "$i" & flooders+=($!); done
    sleep 3 # the flood under way: every caller has sent its first call
  fi
  lens bench --server "$base" --api-key-env LENS_BENCH_KEY --device d0 --deployment "$deployment" --clients "$clients" \
    --requests "$requests" --warmup "$warmup" --json >"$work/bench.json"
  if [ "$2" = flood ]; then
    stop_flood
    codes=$(cat "$work"/flood-*.codes 2>/dev/null | sort | uniq -c | awk '{printf "%s\"%s\": %s", (NR>1?", ":""), $2, $1}')
  fi
  python3 - "$1" "$2" "$work/bench.json" "{${codes}}" <<'PY' | tee -a "$3"
import json, sys
r = json.load(open(sys.argv[3]))
g = lambda *names: next((r[n] for n in names if n in r), None)
print(json.dumps({"round": int(sys.argv[1]), "condition": sys.argv[2], "p50Ms": g("p50Ms", "P50Ms"), "p99Ms": g("p99Ms", "P99Ms"),
                  "maxMs": g("maxMs", "MaxMs"), "calls": g("calls", "Calls"), "failed": g("failed", "Failed"),
                  "flood": json.loads(sys.argv[4])}))
PY
}

for round in $(seq 0 "$rounds"); do
  for condition in quiet flood; do
    if [ "$round" = 0 ]; then run 0 "$condition" /dev/null >/dev/null; else run "$round" "$condition" "$out"; fi
  done
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def values(rs, key, fmt):
    return ", ".join(format(r[key], fmt) for r in rs)
for c in ("quiet", "flood"):
    rs = [r for r in rows if r["condition"] == c and r["round"] > 0]
    if rs:
        print("%-5s: p50 %s ms; p99 %s ms; max %s ms; flood answers %s" % (c, values(rs, "p50Ms", ".3f"), values(rs, "p99Ms", ".3f"),
              values(rs, "maxMs", ".1f"), [r["flood"] for r in rs]))
PY
