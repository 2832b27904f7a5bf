#!/bin/sh
# AfterInstall: stamp the revision into the content the server returns.
set -eu
. "$(dirname "$0")/common.sh"
printf '%s\n' "${DROVER_REVISION:-${DEPLOYMENT_ID:-unknown}}" > "$APP_DIR/public/version.txt"
