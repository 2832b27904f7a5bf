#!/bin/sh
# ApplicationStart: under systemd, a unit of its own; otherwise a background
# process whose pid is kept for ApplicationStop.
set -eu
. "$(dirname "$0")/common.sh"
mkdir -p "$RUN_DIR"
if have_systemd; then
	sysctl_ reset-failed "$UNIT" 2>/dev/null || true
	user=""; [ "$(id -u)" = 0 ] || user="--user"
	systemd-run $user --unit "$UNIT" --collect --quiet \
		--property=Restart=on-failure --working-directory="$APP_DIR" \
		python3 "$APP_DIR/server.py" --port "$PORT" --dir "$APP_DIR/public"
	echo "started unit $UNIT on port $PORT"
else
	# Output goes to a file, so nothing holds the hook's stdout.
	nohup python3 "$APP_DIR/server.py" --port "$PORT" --dir "$APP_DIR/public" \
		>>"$RUN_DIR/server.log" 2>&1 </dev/null &
	echo $! > "$RUN_DIR/server.pid"
	echo "started process $! on port $PORT"
fi
