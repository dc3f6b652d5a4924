#!/usr/bin/env bash
# Verifies what-if models and the advisor on the built-in reference engine (issue 12, "Verification"):
#   1. profile the engine compiled with one bucket set (A: powers of two) and fit it;
#   2. predict another, never profiled (B: linear steps of 128 over the same range) with `lens whatif`;
#   3. profile B for real, measure held-out pairs on B twice (the second is the noise floor), and score the what-if model and the
#      real profile of B on them (E2E and TTFT MAPE);
#   4. `lens advise` from A's model on a workload; compile the recommended set (engine C), time the workload on A and on C, and
#      compare the measured gain in mean E2E with the predicted one.
# Usage: scripts/whatif-verify.sh [OUT_DIR]   (env: ENGINE=linear-small, HELDOUT=40, WORKLOAD=60, MAX_OUTPUT=128, REPEATS=3)
# Needs the .NET SDK and python3. Takes a few minutes; every file it writes is under OUT_DIR (default whatif-verify/).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-whatif-verify}
mkdir -p "$out"
dotnet build src/Lens.Cli -c Release -nologo -v quiet >/dev/null
export LENS_DLL="$PWD/src/Lens.Cli/bin/Release/net10.0/lens.dll"
out=$(cd "$out" && pwd)
export OUT_DIR="$out" ENGINE=${ENGINE:-linear-small} HELDOUT=${HELDOUT:-40} WORKLOAD=${WORKLOAD:-60} MAX_OUTPUT=${MAX_OUTPUT:-128} \
  REPEATS=${REPEATS:-3} PROFILES_DIR="$PWD/src/Lens.Engine/profiles"

python3 - <<'PY'
import csv, json, os, random, signal, socket, subprocess, sys, time, urllib.request

lens_dll, out, engine = os.environ["LENS_DLL"], os.environ["OUT_DIR"], os.environ["ENGINE"]
heldout_n, workload_n = int(os.environ["HELDOUT"]), int(os.environ["WORKLOAD"])
max_output, repeats = int(os.environ["MAX_OUTPUT"]), int(os.environ["REPEATS"])
base = json.load(open(os.path.join(os.environ["PROFILES_DIR"], engine + ".json")))
top_p, top_d = base["prefillBuckets"][-1], base["decodeBuckets"][-1]

def pow2(top):
    edges, e = [], 128
    while e < top:
        edges.append(e); e *= 2
    return edges + [top]

def linear(top):
    return list(range(128, top, 128)) + [top]

def lens(*args, check=True):
    run = subprocess.run(["dotnet", lens_dll, *map(str, args)], capture_output=True, text=True)
    if check and run.returncode != 0:
        sys.exit(f"lens {' '.join(map(str, args))} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run.stdout

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

servers, served_model = [], {}
def serve(name, prefill, decode):
    profile = dict(base, name=f"{engine}-{name}", prefillBuckets=prefill, decodeBuckets=decode)
    path = os.path.join(out, f"engine-{name}.json")
    json.dump(profile, open(path, "w"), indent=2)
    port = free_port()
    servers.append(subprocess.Popen(["dotnet", lens_dll, "engine", "serve", "--profile", path, "--port", str(port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}/v1"
    served_model[url] = profile["name"]
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/models", timeout=2).read(); return url
        except Exception:
            time.sleep(0.1)
    sys.exit(f"engine {name} did not start on {url}")

def lists(prefill, decode):
    return ["--prefill-buckets", ",".join(map(str, prefill)), "--decode-buckets", ",".join(map(str, decode))]

def profile(url, name, prefill, decode):
    lens("profile", "--endpoint", url, "--model", served_model[url], *lists(prefill, decode), "--repeats", repeats, "--max-span", max_output,
         "--out", os.path.join(out, f"profile-{name}.csv"), "--fit", os.path.join(out, f"model-{name}.json"))
    return os.path.join(out, f"model-{name}.json")

def measure(url, name, pairs, times):
    plan = os.path.join(out, f"plan-{name}.csv")
    with open(plan, "w", newline="") as f:
        w = csv.writer(f); w.writerow(["bucket", "input_len", "output_len"])
        for i, o in pairs: w.writerow([f"decode-{top_d}", i, o])
    path = os.path.join(out, f"{name}.csv")
    if os.path.exists(path): os.remove(path)
    lens("profile", "--endpoint", url, "--model", served_model[url], "--plan", plan, "--repeats", times, "--out", path)
    rows = list(csv.DictReader(open(path)))
    by_pair = {}
    for r in rows:
        by_pair.setdefault((int(r["input_len"]), int(r["output_len"])), []).append((float(r["e2e_ms"]), float(r["ttft_ms"] or "nan")))
    return path, by_pair

def mape(pred, meas):
    return sum(abs(p - m) / m for p, m in zip(pred, meas)) / len(meas)

try:
    a_p, a_d = pow2(top_p), pow2(top_d)
    b_p, b_d = linear(top_p), linear(top_d)
    url_a, url_b = serve("A", a_p, a_d), serve("B", b_p, b_d)
    print(f"A (profiled): P={a_p} D={a_d}\nB (predicted, then profiled for real): P={b_p} D={b_d}")
    model_a = profile(url_a, "A", a_p, a_d)
    whatif = os.path.join(out, "whatif-B.json")
    print(lens("whatif", "--model", model_a, *lists(b_p, b_d), "--out", whatif))

    rng = random.Random(12)
    pairs = set()
    while len(pairs) < heldout_n:  # half near B's bucket edges (where the steps are), half anywhere
        if len(pairs) % 2 == 0:
            i = min(top_p, max(1, rng.choice(b_p) + rng.choice([-2, -1, 1, 2])))
        else:
            i = rng.randint(1, top_p)
        o = rng.randint(1, max(1, min(max_output, top_d - i)))
        pairs.add((i, o))
    pairs = sorted(pairs)
    held_path, held = measure(url_b, "heldout-B", pairs, 2)
    model_b = profile(url_b, "B", b_p, b_d)

    # Predictions for the held-out pairs from each model, then MAPE against the measured minimum of the two repeats.
    pairs_file = os.path.join(out, "heldout-pairs.csv")
    with open(pairs_file, "w", newline="") as f:
        w = csv.writer(f); w.writerow(["input_len", "output_len"]); w.writerows(pairs)
    def predictions(model):
        path = os.path.join(out, "pred-" + os.path.basename(model).replace(".json", ".csv"))
        lens("predict", "--model", model, "--pairs", pairs_file, "--out", path)
        return [(float(r["e2e_ms"]), float(r["ttft_ms"])) for r in csv.DictReader(open(path))]
    measured = [(min(x[0] for x in held[p]), min(x[1] for x in held[p])) for p in pairs]
    twin = [(held[p][1][0], held[p][1][1]) for p in pairs]
    first = [(held[p][0][0], held[p][0][1]) for p in pairs]
    floor_e2e = mape([t[0] for t in twin], [f[0] for f in first])
    floor_ttft = mape([t[1] for t in twin], [f[1] for f in first])
    results = {"noise floor (twin vs first)": (floor_e2e, floor_ttft)}
    for label, model in [("what-if B (from A's curves)", whatif), ("real profile of B", model_b)]:
        pred = predictions(model)
        results[label] = (mape([p[0] for p in pred], [m[0] for m in measured]), mape([p[1] for p in pred], [m[1] for m in measured]))
    print(f"\nHeld-out pairs on B: {len(pairs)} (each measured twice; scored against the faster of the two)")
    for label, (e, t) in results.items():
        print(f"  {label:32s} E2E MAPE {e:6.2%}   TTFT MAPE {t:6.2%}")
    e_whatif, t_whatif = results["what-if B (from A's curves)"]
    ok_whatif = e_whatif <= max(0.05, 1.25 * floor_e2e) and t_whatif <= max(0.05, 1.25 * floor_ttft)
    print(f"  what-if within max(5%, 1.25 x noise floor): {'yes' if ok_whatif else 'NO'}")

    # The advisor: a workload of short-to-medium prompts, recommended edges from A's model, compiled and timed for real.
    wl = [(n * 100, min(top_p, max(1, int(rng.lognormvariate(4.6, 0.6)))), rng.randint(8, max_output)) for n in range(workload_n)]
    wl = [(t, i, min(o, top_d - i)) for t, i, o in wl]
    trace = os.path.join(out, "workload.csv")
    with open(trace, "w", newline="") as f:
        w = csv.writer(f); w.writerow(["arrival_ms", "input_len", "output_len"]); w.writerows(wl)
    advice_path = os.path.join(out, "advice.json")
    print(lens("advise", "--model", model_a, "--trace", trace, "--max-buckets", "4", "--out", advice_path))
    advice = json.load(open(advice_path))["advice"]
    rec, cur = advice["recommended"], advice["current"]
    predicted_gain = (cur["meanE2eMs"] - rec["meanE2eMs"]) / cur["meanE2eMs"]
    url_c = serve("C", rec["prefill"], rec["decode"])
    wl_pairs = sorted({(i, o) for _, i, o in wl})
    _, on_a = measure(url_a, "workload-A", wl_pairs, 2)
    _, on_c = measure(url_c, "workload-C", wl_pairs, 2)
    mean_a = sum(min(x[0] for x in on_a[(i, o)]) for _, i, o in wl) / len(wl)
    mean_c = sum(min(x[0] for x in on_c[(i, o)]) for _, i, o in wl) / len(wl)
    measured_gain = (mean_a - mean_c) / mean_a
    print(f"Advisor: recommended P={rec['prefill']} D={rec['decode']} over A's P={cur['prefill']} D={cur['decode']}")
    print(f"  workload mean E2E: A {mean_a:.1f} ms, recommended {mean_c:.1f} ms; measured gain {measured_gain:.2%}, "
          f"predicted {predicted_gain:.2%}, noise floor {floor_e2e:.2%}")
    ok_advice = measured_gain >= predicted_gain - floor_e2e
    print(f"  beats A by at least the predicted margin minus the noise floor: {'yes' if ok_advice else 'NO'}")
    json.dump({"heldout": {k: {"e2eMape": v[0], "ttftMape": v[1]} for k, v in results.items()}, "whatifOk": ok_whatif,
               "advice": {"meanE2eA": mean_a, "meanE2eRecommended": mean_c, "measuredGain": measured_gain,
                          "predictedGain": predicted_gain, "ok": ok_advice}}, open(os.path.join(out, "verify.json"), "w"), indent=2)
    sys.exit(0 if ok_whatif and ok_advice else 1)
finally:
    for s in servers:
        s.send_signal(signal.SIGINT)  # the engine stops on Ctrl+C
        try: s.wait(10)
        except subprocess.TimeoutExpired: s.kill()
PY
