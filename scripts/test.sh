#!/usr/bin/env bash
# Runs every test of the solution: starts what the tests need (Azurite on loopback), runs `dotnet test` with a console
# summary per project, and ends with one plain line "N passed, N failed". Exit status is dotnet test's.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ -x scripts/azurite.sh ]; then
  scripts/azurite.sh start || { echo "could not start Azurite (see above)"; exit 1; }
  trap 'scripts/azurite.sh stop >/dev/null 2>&1 || true' EXIT
fi

# The web console's browser tests drive Debian's chromium (tests/Lens.Console.Tests): install it once when it is missing.
if [ ! -x "${LENS_CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "installing chromium for the console's browser tests"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null; } \
    || { echo "could not install chromium (apt-get install chromium)"; exit 1; }
fi

log=$(mktemp)
# Build in parallel, then run the test projects one after another: several of them time real requests (the reference engine,
# drift detection), and two suites competing for the two cores would make those timings noisier than the machine already is.
dotnet build LENS.sln --configuration Release -nologo -v quiet || exit 1
dotnet test LENS.sln --configuration Release --no-build -m:1 --logger "console;verbosity=normal" -- RunConfiguration.TreatNoTestsAsError=true 2>&1 | tee "$log" \
  | grep -vE '^\s+Passed [A-Za-z]' # per-test lines stay in the log; failures and summaries are shown
status=${PIPESTATUS[0]}

# The console logger closes each test project with "Total tests: N", then "Passed: N" and "Failed: N" lines.
passed=$(grep -E '^\s+Passed: +[0-9]+\s*$' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
failed=$(grep -E '^\s+Failed: +[0-9]+\s*$' "$log" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
projects=$(grep -cE '^Total tests: ' "$log")
echo "test projects run: $projects"
echo "$passed passed, $failed failed"
# Repeat each failure (name and the first lines of its message) last, where a run's tail is all a reader may see.
if [ "$failed" -gt 0 ]; then
  echo "failed tests:"
  awk '/^[[:space:]]+Failed [A-Za-z_]/ {n=8} n > 0 {print; n--}' "$log"
fi
rm -f "$log"
if [ "$status" -eq 0 ] && [ "$projects" -eq 0 ]; then
  echo "no test project ran"; exit 1
fi
exit "$status"
