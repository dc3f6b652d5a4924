#!/usr/bin/env bash
# Prediction throughput of LENS silos, measured by `lens bench` (the project's load generator), on one silo and on three.
#   scripts/bench.sh [rounds] [--silos 1|3|both]     (default 3 rounds, both; writes bench-results.jsonl and prints a summary)
# Each setup first runs one unrecorded warm-up round of every run (the silos' JIT tiers up over the first tens of thousands of calls).
# 1 silo: one embedded `lens serve` on loopback. 3 silos: three `lens serve --storage azure-table` processes forming one cluster
# on Azurite (started with scripts/azurite.sh when it is not running, and then stopped at exit), with a cluster id, service id
# and table prefix of their own for this run. Either way a deployment replaying a fitted model is profiled through silo 0 (timed
# without waiting, so profiling is instant), then single and batched predictions run over HTTP (--server listing every silo's
# URL; client i calls URL i mod 3) and through the Orleans client (--gateway listing every silo's gateway; one Orleans client
# per gateway), interleaved and repeated. Every JSONL line carries a "silos" field. Everything started is stopped on exit.
# Silo settings pass through the environment (Lens__... variables; see docs/performance.md).
# Sizes: BENCH_SINGLE_REQUESTS (40000 single calls), BENCH_BATCH_REQUESTS (3000 calls of 1000), BENCH_WARMUP (3000 untimed calls).
# BENCH_BAD_KEY_RATE=R adds, in each round, single HTTP calls with a wrong-key flood of about R requests/s alongside
# (`lens bench --bad-key-rate`), shown as transport "http+flood"; BENCH_RUNS=http limits each round to the HTTP single and
# flood runs.
# Ports: HTTP_PORT/SILO_PORT/GATEWAY_PORT (5181/11181/30181) for one silo; CLUSTER_HTTP_PORT/CLUSTER_SILO_PORT/
# CLUSTER_GATEWAY_PORT (5190/11190/30190, and the next two of each) for three. LENS_BENCH_STORAGE: the cluster's Azure Storage
# connection string (default UseDevelopmentStorage=true, Azurite's default ports). BENCH_OUT: the JSONL file.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 [rounds] [--silos 1|3|both]" >&2; exit 2; }
rounds=3
silos=both
while [ $# -gt 0 ]; do
  case "$1" in
    --silos) [ $# -ge 2 ] || usage; silos=$2; shift 2 ;;
    --silos=*) silos=${1#--silos=}; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) [[ "$1" =~ ^[1-9][0-9]*$ ]] || usage; rounds=$1; shift ;;
  esac
done
case "$silos" in 1) setups=(1) ;; 3) setups=(3) ;; both) setups=(1 3) ;; *) usage ;; esac

out=${BENCH_OUT:-bench-results.jsonl}
single_requests=${BENCH_SINGLE_REQUESTS:-40000}
batch_requests=${BENCH_BATCH_REQUESTS:-3000}
warmup=${BENCH_WARMUP:-3000}
for n in "$single_requests" "$batch_requests" "$warmup"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "bench.sh: BENCH_SINGLE_REQUESTS, BENCH_BATCH_REQUESTS and BENCH_WARMUP must be numbers" >&2; exit 2; }
done
bad_key_rate=${BENCH_BAD_KEY_RATE:-}
[ -z "$bad_key_rate" ] || [[ "$bad_key_rate" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: BENCH_BAD_KEY_RATE must be a whole number of requests/s" >&2; exit 2; }
runs=("http 1 $single_requests" "http 1000 $batch_requests" "http-json 1000 $batch_requests" "orleans 1 $single_requests" "orleans 1000 $batch_requests")
case "${BENCH_RUNS:-all}" in
  all) ;;
  http) runs=("http 1 $single_requests") ;;
  *) echo "bench.sh: BENCH_RUNS must be all or http" >&2; exit 2 ;;
esac
# The flood run follows the plain HTTP run it is compared with, so the two are interleaved.
[ -z "$bad_key_rate" ] || runs=("${runs[0]}" "http-flood 1 $single_requests" "${runs[@]:1}")

dotnet build -c Release src/Lens.Cli -v quiet -nologo >/dev/null
lens_dll=src/Lens.Cli/bin/Release/net10.0/lens.dll
child=            # the lens command running now: in the background and waited for, so that a signal's trap runs at once
lens() {
  local rc=0
  dotnet "$lens_dll" "$@" &
  child=$!
  wait "$child" || rc=$?
  child=
  return "$rc"
}
work=$(mktemp -d "${TMPDIR:-/tmp}/lens-bench.XXXXXX")
export LENS_BENCH_KEY=bench-key-0123456789abcdef
export LENS_BENCH_STORAGE=${LENS_BENCH_STORAGE:-UseDevelopmentStorage=true}
servers=()        # pids of the running `lens serve` processes (dotnet itself, so that a kill reaches it)
started_azurite=0

stop_servers() {
  local pid
  for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  servers=()
}
cleanup() {
  if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
  stop_servers
  if [ "$started_azurite" = 1 ]; then scripts/azurite.sh stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "bench.sh: $1" >&2
  local log
  for log in "$work"/serve-"${current:-}"*.log; do
    [ -f "$log" ] || continue
    echo "--- last lines of $(basename "$log"):" >&2
    tail -n 25 "$log" >&2
  done
  exit 1
}

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

# start_silos N: N `lens serve` processes (1: embedded; 3: one azure-table cluster), ports in http_ports/silo_ports/gateway_ports.
start_silos() {
  local n=$1 i storage=()
  current=${n}silo # the logs fail() shows
  if [ "$n" = 1 ]; then
    http_ports=("${HTTP_PORT:-5181}"); silo_ports=("${SILO_PORT:-11181}"); gateway_ports=("${GATEWAY_PORT:-30181}")
  else
    local h=${CLUSTER_HTTP_PORT:-5190} s=${CLUSTER_SILO_PORT:-11190} g=${CLUSTER_GATEWAY_PORT:-30190}
    http_ports=("$h" $((h + 1)) $((h + 2))); silo_ports=("$s" $((s + 1)) $((s + 2))); gateway_ports=("$g" $((g + 1)) $((g + 2)))
    # A cluster of this run's own: no stale membership rows or grain state from an earlier run on the same Azurite.
    cluster_id="bench$(date +%s)$$"
    storage=(--storage azure-table --connection-string-env LENS_BENCH_STORAGE)
  fi
  for i in $(seq 0 $((n - 1))); do
    if [ "$n" = 1 ]; then
      dotnet "$lens_dll" serve --tenant bench --api-key-env LENS_BENCH_KEY --http-port "${http_ports[$i]}" \
        --silo-port "${silo_ports[$i]}" --gateway-port "${gateway_ports[$i]}" >"$work/serve-1silo-$i.log" 2>&1 &
    else
      Lens__ClusterId=$cluster_id Lens__ServiceId=$cluster_id Lens__TablePrefix=$cluster_id \
        dotnet "$lens_dll" serve "${storage[@]}" --tenant bench --api-key-env LENS_BENCH_KEY --http-port "${http_ports[$i]}" \
        --silo-port "${silo_ports[$i]}" --gateway-port "${gateway_ports[$i]}" >"$work/serve-3silo-$i.log" 2>&1 &
    fi
    servers+=($!)
  done
}

# alive: every started silo is still running.
alive() {
  local i
  for i in "${!servers[@]}"; do
    kill -0 "${servers[$i]}" 2>/dev/null || fail "lens serve $i (HTTP port ${http_ports[$i]}) exited"
  done
}

# wait_ready N: every silo answers /health, the deployment is profiled through silo 0, and a prediction succeeds through
# every silo (in a cluster, membership has settled). Sets remote, deployment. Bounded: READY_SECONDS (180).
wait_ready() {
  local n=$1 i deadline=$((SECONDS + ${READY_SECONDS:-180})) pending
  for i in $(seq 0 $((n - 1))); do
    until curl -sf "http://127.0.0.1:${http_ports[$i]}/health" >/dev/null 2>&1; do
      alive
      [ $SECONDS -lt "$deadline" ] || fail "silo $i did not answer http://127.0.0.1:${http_ports[$i]}/health within ${READY_SECONDS:-180} s"
      sleep 0.5
    done
  done
  remote=(--server "http://127.0.0.1:${http_ports[0]}" --api-key-env LENS_BENCH_KEY --device bench-0)
  until lens profile "${remote[@]}" --spec "$work/spec.json" --wait >"$work/profile.log" 2>&1; do
    alive
    [ $SECONDS -lt "$deadline" ] || { cat "$work/profile.log" >&2; fail "profiling the replayed deployment through silo 0 did not succeed within ${READY_SECONDS:-180} s"; }
    sleep 2
  done
  deployment=$(lens status "${remote[@]}" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
  pending=$(seq 0 $((n - 1)))
  while [ -n "$pending" ]; do
    local still=""
    for i in $pending; do
      if ! lens predict --server "http://127.0.0.1:${http_ports[$i]}" --api-key-env LENS_BENCH_KEY --device bench-0 \
        --deployment "$deployment" --input-len 300 --output-len 200 --json >"$work/predict-$i.log" 2>&1; then
        still="$still $i"
      fi
    done
    pending=$still
    [ -n "$pending" ] || break
    alive
    if [ $SECONDS -ge "$deadline" ]; then
      for i in $pending; do echo "silo $i: $(tail -n 3 "$work/predict-$i.log")" >&2; done
      fail "a first prediction did not succeed through silo(s)$pending within ${READY_SECONDS:-180} s (cluster membership not settled?)"
    fi
    sleep 2
  done
}

# run_rounds N: the interleaved rounds against the running silos; appends to $out with "silos": N.
run_rounds() {
  local n=$1 round run urls gateways target rc line
  urls=$(printf 'http://127.0.0.1:%s,' "${http_ports[@]}"); urls=${urls%,}
  gateways=$(IFS=,; echo "${gateway_ports[*]}")
  # Round 0 is a warm-up of the silos (their JIT tiers up over the first tens of thousands of calls) and is not recorded.
  for round in $(seq 0 "$rounds"); do
    for run in "${runs[@]}"; do
      set -- $run
      if [ "$1" = http ]; then
        target=(--server "$urls" --api-key-env LENS_BENCH_KEY --device bench-0)
      elif [ "$1" = http-flood ]; then
        target=(--server "$urls" --api-key-env LENS_BENCH_KEY --device bench-0 --bad-key-rate "$bad_key_rate")
      elif [ "$1" = http-json ]; then
        target=(--server "$urls" --api-key-env LENS_BENCH_KEY --device bench-0 --batch-format json)
      else
        target=(--gateway "$gateways" --tenant bench --device bench-0)
        if [ "$n" != 1 ]; then target+=(--cluster-id "$cluster_id" --service-id "$cluster_id"); fi
      fi
      rc=0
      lens bench "${target[@]}" --deployment "$deployment" --clients 16 --batch "$2" --requests "$3" --warmup "$warmup" \
        --max-seconds 60 --json >"$work/bench.json" 2>"$work/bench.err" || rc=$?
      line=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["silos"]=int(sys.argv[2]); print(json.dumps(d, separators=(",", ":")))' \
        "$work/bench.json" "$n" 2>/dev/null) || { cat "$work/bench.err" >&2; fail "lens bench ($1, batch $2, $n silo(s)) gave no result (exit $rc)"; }
      if [ "$rc" != 0 ]; then
        echo "bench.sh: lens bench exited $rc (calls failed): $(head -c 500 "$work/bench.err")" >&2
        failures=$((failures + 1))
      fi
      if [ "$round" = 0 ]; then
        echo "$n silo(s), warm-up round (not recorded): $line"
      else
        echo "$line" >>"$out"
        echo "$n silo(s), round $round: $line"
      fi
    done
  done
}

failures=0
: >"$out"
for n in "${setups[@]}"; do
  if [ "$n" = 3 ] && [ "$LENS_BENCH_STORAGE" = UseDevelopmentStorage=true ] && ! scripts/azurite.sh status; then
    scripts/azurite.sh start >&2
    started_azurite=1
  fi
  start_silos "$n"
  wait_ready "$n"
  run_rounds "$n"
  stop_servers
done

# Summary: predictions/s min / median / max over the rounds and the median p99 per call, for each silos x transport x batch.
python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
groups = {}
for r in rows:
    transport = r["transport"] + ("-" + r["batchFormat"] if r.get("batchFormat") else "") + ("+flood" if r.get("badKey") else "")
    groups.setdefault((r["silos"], transport, r["batch"]), []).append(r)
def rate(x):
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x:,.0f}"
print()
print(f"{'silos':>5}  {'transport':<11} {'batch':>5}  {'rounds':>6}  {'predictions/s min':>17}  {'median':>10}  {'max':>10}  {'p99 ms (median)':>15}")
for (silos, transport, batch), rs in sorted(groups.items()):
    pps = sorted(r["predictionsPerSecond"] for r in rs)
    p99 = statistics.median(r["p99Ms"] for r in rs)
    print(f"{silos:>5}  {transport:<11} {batch:>5}  {len(rs):>6}  {rate(pps[0]):>17}  {rate(statistics.median(pps)):>10}  {rate(pps[-1]):>10}  {p99:>15.2f}")
    if any(r.get("badKey") for r in rs):
        flood = [r["badKey"] for r in rs]
        print(f"{'':>5}  flood alongside: {statistics.median(f['perSecond'] for f in flood):,.0f} wrong-key requests/s answered (median), "
              f"{sum(f['unauthorized'] for f in flood):,} x 401, {sum(f['throttled'] for f in flood):,} x 429, {sum(f['other'] for f in flood):,} other")
PY
[ "$failures" = 0 ] || { echo "bench.sh: $failures run(s) had failed calls (see $out)" >&2; exit 1; }
