#!/bin/sh
# BeforeInstall: check what the app needs before any file is copied.
set -eu
. "$(dirname "$0")/common.sh"
if ! command -v python3 >/dev/null 2>&1; then
	echo "hello-web needs python3 to serve HTTP" >&2
	exit 1
fi
mkdir -p "$RUN_DIR"
echo "installing revision ${DROVER_REVISION:-unknown} for port $PORT"
