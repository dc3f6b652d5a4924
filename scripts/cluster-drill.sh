#!/usr/bin/env bash
# The cluster fault drill on this machine, without containers (tests/Lens.ClusterDrill):
#   three `lens serve` processes on loopback ports, --storage azure-table against Azurite (scripts/azurite.sh), one cluster on
#   tables of their own; a replayed deployment is profiled; a bounded prediction/import load runs over HTTP against all three
#   silos with client-side retry; profiles start on three more devices; the silo hosting the most of them is SIGKILLed in the
#   middle of the load and of those profiles; then it reports requests served / failed / retried and the measurements stored
#   before and after, and checks that no request failed after retry and no measurement was lost.
#
#   scripts/cluster-drill.sh [--requests N] [--devices N] [--repeats N] [--no-kill] [--json]
#
# Exit 0 when every property held. Takes about a minute. Everything it starts is stopped on exit (Azurite only when this
# script started it). LENS_DRILL_STORAGE: another Azure Storage connection string instead of Azurite. CONFIGURATION: Release.
set -euo pipefail
cd "$(dirname "$0")/.."

configuration=${CONFIGURATION:-Release}
work=$(mktemp -d "${TMPDIR:-/tmp}/lens-drill.XXXXXX")
started_azurite=0

cleanup() {
  # The drill stops its silos itself and removes its pid file; a leftover file means it was interrupted.
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      kill -KILL "$pid" 2>/dev/null || true
    done <"$work/pids"
  fi
  if [ "$started_azurite" = 1 ]; then
    scripts/azurite.sh stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [ -z "${LENS_DRILL_STORAGE:-}" ] && ! scripts/azurite.sh status; then
  scripts/azurite.sh start
  started_azurite=1
fi

echo "cluster-drill: building ($configuration)"
dotnet build tests/Lens.ClusterDrill --configuration "$configuration" --nologo --verbosity quiet
dotnet "tests/Lens.ClusterDrill/bin/$configuration/net10.0/Lens.ClusterDrill.dll" --work-dir "$work" "$@"
