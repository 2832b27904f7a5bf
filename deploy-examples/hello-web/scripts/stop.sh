#!/bin/sh
# ApplicationStop: runs from the revision that is installed now.
set -eu
. "$(dirname "$0")/common.sh"
if have_systemd && sysctl_ is-active --quiet "$UNIT" 2>/dev/null; then
	sysctl_ stop "$UNIT"
	echo "stopped unit $UNIT"
fi
if [ -f "$RUN_DIR/server.pid" ]; then
	pid="$(cat "$RUN_DIR/server.pid")"
	if kill "$pid" 2>/dev/null; then
		# Wait for the port to be free, at most 10 s.
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		echo "stopped process $pid"
	fi
	rm -f "$RUN_DIR/server.pid"
fi
