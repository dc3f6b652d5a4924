#!/usr/bin/env bash
# Prediction throughput of a running LENS silo, measured by `lens bench` (the project's load generator).
# Starts one embedded silo on loopback, creates a deployment replaying a fitted model (timed without waiting, so profiling
# is instant), and runs single and batched predictions over HTTP and through the Orleans client, interleaved and repeated.
#   scripts/bench.sh [rounds]        (default 3 rounds; prints one line per run and writes bench-results.jsonl)
# Silo settings pass through the environment, e.g. Lens__Grains__ModelVersionTtl=00:00:00.250 (see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=${BENCH_OUT:-bench-results.jsonl}
dotnet build -c Release src/Lens.Cli -v quiet -nologo >/dev/null
lens() { dotnet src/Lens.Cli/bin/Release/net10.0/lens.dll "$@"; }
work=$(mktemp -d)
export LENS_BENCH_KEY=bench-key-0123456789abcdef
http_port=${HTTP_PORT:-5181}; silo_port=${SILO_PORT:-11181}; gateway_port=${GATEWAY_PORT:-30181}

lens serve --tenant bench --api-key-env LENS_BENCH_KEY --http-port "$http_port" --silo-port "$silo_port" --gateway-port "$gateway_port" \
  >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$http_port/health" >/dev/null 2>&1 && break; sleep 0.5; done

# A model to replay: fitted from a synthetic plan (NxD buckets, max context 4096, seq len 8192).
lens plan --preset nxdi --max-context 4096 --seq-len 8192 --out "$work/plan.csv" >/dev/null
awk -F, 'NR==1{print "bucket,input_len,output_len,e2e_ms"; next} {print $1","$2","$3","(20+$2*0.05+($3-1)*(1+$2/4000))}' "$work/plan.csv" > "$work/m.csv"
lens fit --preset nxdi --max-context 4096 --seq-len 8192 --measurements "$work/m.csv" --out "$work/model.json" >/dev/null
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
spec = {"name": "bench", "model": "replayed", "prefillBuckets": [128, 256, 512, 1024, 2048, 4096],
        "decodeBuckets": [128, 256, 512, 1024, 2048, 4096, 8192],
        "backend": {"kind": "replay", "modelJson": open(f"{work}/model.json").read()}}
json.dump(spec, open(f"{work}/spec.json", "w"))
PY
remote=(--server "http://127.0.0.1:$http_port" --api-key-env LENS_BENCH_KEY --device bench-0)
lens profile "${remote[@]}" --spec "$work/spec.json" --wait >/dev/null
deployment=$(lens status "${remote[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

: >"$out"
for round in $(seq 1 "$rounds"); do
  for run in "http 1 40000" "http 1000 3000" "orleans 1 40000" "orleans 1000 3000"; do
    set -- $run
    if [ "$1" = http ]; then target=("${remote[@]}"); else target=(--gateway "$gateway_port" --tenant bench --device bench-0); fi
    line=$(lens bench "${target[@]}" --deployment "$deployment" --clients 16 --batch "$2" --requests "$3" --warmup 3000 --max-seconds 60 --json | tr -d '\n ')
    echo "$line" >>"$out"
    echo "round $round: $line"
  done
done
