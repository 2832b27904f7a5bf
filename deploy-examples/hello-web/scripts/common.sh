# Shared by the hello-web hook scripts; sourced, not run.
# DROVER_ROOT is "/" on a real host; drover's demo and tests give each
# simulated host its own root. Under AWS CodeDeploy it is unset.
ROOT="${DROVER_ROOT:-/}"
ROOT="${ROOT%/}"
APP_DIR="$ROOT/opt/hello-web"
RUN_DIR="$ROOT/var/run/hello-web"
CONF="$ROOT/etc/hello-web/port"
PORT="${HELLO_WEB_PORT:-8080}"
if [ -r "$CONF" ]; then PORT="$(cat "$CONF")"; fi
UNIT="hello-web-$PORT"

# have_systemd: true when systemd manages this host and we can talk to it.
# HELLO_WEB_SYSTEMD=off forces a plain background process (drover demo).
have_systemd() {
	[ "${HELLO_WEB_SYSTEMD:-auto}" != off ] || return 1
	[ -d /run/systemd/system ] || return 1
	command -v systemd-run >/dev/null 2>&1 || return 1
	# show-environment succeeds only when the manager answers on its bus.
	sysctl_ show-environment >/dev/null 2>&1
}
sysctl_() { if [ "$(id -u)" = 0 ]; then systemctl "$@"; else systemctl --user "$@"; fi; }
