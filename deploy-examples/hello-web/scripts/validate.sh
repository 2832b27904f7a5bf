#!/bin/sh
# ValidateService: the new revision must answer over HTTP within 30 s.
set -eu
. "$(dirname "$0")/common.sh"
want="${DROVER_REVISION:-${DEPLOYMENT_ID:-unknown}}"
i=0
while [ $i -lt 300 ]; do
	got="$(python3 "$APP_DIR/server.py" --get "http://127.0.0.1:$PORT/version.txt" 2>/dev/null || true)"
	if [ "$got" = "$want" ]; then
		echo "serving $want on port $PORT"
		exit 0
	fi
	sleep 0.1
	i=$((i + 1))
done
echo "port $PORT serves '${got:-nothing}', want '$want'" >&2
exit 1
