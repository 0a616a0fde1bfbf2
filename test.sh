#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the interop peers it needs
# (Debian packages; run as root or with them already installed), then vet
# and every test, interop peers required, under the race detector (processes
# the tests start are built without it, so their timing is the product's).
set -euo pipefail
cd "$(dirname "$0")"

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio kamailio-presence-modules)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v prosody >/dev/null 2>&1 || need+=(prosody)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if ((${#need[@]})); then
	if [ "$(id -u)" -ne 0 ]; then
		echo "test.sh: missing interop peers (${need[*]}); install them or run as root" >&2
		exit 1
	fi
	echo "test.sh: installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Under this script a missing interop peer is a failure, not a skip.
export BRIDGE_REQUIRE_INTEROP=1

go vet ./...
go test -race -count=1 -timeout 20m ./...
