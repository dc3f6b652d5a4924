#!/bin/sh
# Entry point of the LENS image: runs `lens <args>` (default `serve`). When Lens__SiloAddress is not set, the silo advertises
# this container's own IP address, so that silos in other containers can reach it (127.0.0.1 would only reach itself).
set -eu
if [ -z "${Lens__SiloAddress:-}" ]; then
  address=$(getent hosts "$(cat /etc/hostname)" | awk '{ print $1; exit }')
  if [ -n "$address" ]; then
    export Lens__SiloAddress="$address"
  fi
fi
exec dotnet /app/lens.dll "$@"
