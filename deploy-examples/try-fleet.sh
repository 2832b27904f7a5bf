#!/usr/bin/env bash
# try-fleet.sh: a 3-host drover fleet on this machine, to try by hand.
#
# NEEDS THE AGENT: written against the command line and configuration of
# DESIGN.md §4/§5 (`drover agent`, `drover status`, `drover pause`, gossip,
# git source). Until `drover agent` exists this script stops at the check
# below. It is not run by the tests.
#
#   deploy-examples/try-fleet.sh [DROVER_BINARY]
#
# What it does, all under one temporary directory (printed; removed on exit):
#   - a bare git repository with a `release` branch holding hello-web and a
#     one-at-a-time manifest, as a developer's deploy repository would;
#   - three agents, h1 h2 h3, on 127.0.0.1: gossip ports 7951-7953 (h2 and
#     h3 join h1), metrics on 127.0.0.1:9951-9953, each with its own config,
#     state directory, API socket and --root, so hello-web installs under
#     DIR/hN/root/opt/hello-web and serves on port 8081, 8082 or 8083;
#   - an encrypted cluster (a key from `drover keygen`).
# Then it waits for the first deployment and prints what to try: push a new
# revision (the `release` helper of DIR/env.sh), watch the rollout
# go one host at a time, pause/resume it, break a revision and see it halt
# and roll back, kill -9 an agent mid-rollout. Ctrl-C stops everything.
#
# Run it as root on a systemd host to see hooks in their own scopes
# (`systemctl list-units 'drover-*'`); as another user it uses systemd: off
# (process groups). hello-web needs python3.
set -euo pipefail

drover=${1:-$(command -v drover || true)}
if [ -z "$drover" ] || [ ! -x "$drover" ]; then
	echo "try-fleet: no drover binary; pass its path or put it on PATH" >&2
	exit 2
fi
drover=$(cd "$(dirname "$drover")" && pwd)/$(basename "$drover")
if ! "$drover" agent --help >/dev/null 2>&1; then
	echo "try-fleet: $drover has no 'agent' command yet; this script needs the agent" >&2
	exit 2
fi
command -v git >/dev/null || { echo "try-fleet: needs git" >&2; exit 2; }
command -v python3 >/dev/null || { echo "try-fleet: hello-web needs python3" >&2; exit 2; }

here=$(cd "$(dirname "$0")" && pwd)
example=$here/hello-web
[ -f "$example/appspec.yml" ] || { echo "try-fleet: $example/appspec.yml not found" >&2; exit 2; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/drover-fleet.XXXXXX")
pids=()
cleanup() {
	set +e
	echo
	echo "stopping the fleet"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	# What ApplicationStart left running: a systemd unit per port, or a pid.
	for n in 1 2 3; do
		port=808$n
		if [ "$(id -u)" = 0 ]; then
			systemctl stop "hello-web-$port" 2>/dev/null
		else
			systemctl --user stop "hello-web-$port" 2>/dev/null
		fi
		pidf=$dir/h$n/root/var/run/hello-web/server.pid
		[ -f "$pidf" ] && kill "$(cat "$pidf")" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "fleet directory: $dir"

# The deploy repository: hello-web plus a manifest on the release branch.
git init -q --bare "$dir/deploy.git"
git clone -q "$dir/deploy.git" "$dir/work" 2>/dev/null
(
	cd "$dir/work"
	git config user.name "try-fleet"
	git config user.email "try-fleet@localhost"
	git checkout -q -b release
	mkdir hello-web
	cp -R "$example/." hello-web/
	cp "$here/manifests/one-at-a-time.yaml" hello-web/manifest.yaml
	git add -A
	git commit -q -m "hello-web: first revision"
	git push -q origin release
)

"$drover" keygen >"$dir/gossip.key"
chmod 0600 "$dir/gossip.key"

systemd_mode=auto
[ "$(id -u)" = 0 ] || systemd_mode=off

for n in 1 2 3; do
	h=$dir/h$n
	mkdir -p "$h/state" "$h/root/etc/hello-web"
	echo "808$n" >"$h/root/etc/hello-web/port"
	join="[]"
	[ "$n" = 1 ] || join="[127.0.0.1:7951]"
	cat >"$h/drover.yaml" <<YAML
node:
  name: h$n
  groups: [web]
  labels: {try-fleet: "yes"}
  state_dir: $h/state
  root: $h/root
cluster:
  bind: 127.0.0.1:795$n
  join: $join
  encrypt_key_file: $dir/gossip.key
api:
  socket: $h/drover.sock
  metrics_listen: 127.0.0.1:995$n
systemd: $systemd_mode
applications:
  - name: hello-web
    group: web
    poll_interval: 2s
    source:
      git: {url: "file://$dir/deploy.git", branch: release, path: hello-web}
YAML
	"$drover" agent --config "$h/drover.yaml" --log-format text >"$h/agent.log" 2>&1 &
	pids+=($!)
	echo "h$n: pid $!, log $h/agent.log, metrics http://127.0.0.1:995$n/metrics, hello-web http://127.0.0.1:808$n/"
done

# Helpers for a second terminal.
cat >"$dir/env.sh" <<SH
# source $dir/env.sh
h1() { "$drover" --config "$dir/h1/drover.yaml" "\$@"; }
h2() { "$drover" --config "$dir/h2/drover.yaml" "\$@"; }
h3() { "$drover" --config "$dir/h3/drover.yaml" "\$@"; }
# release [MESSAGE]: commit a new hello-web revision to the release branch.
release() {
	( cd "$dir/work" && date -u +%H:%M:%S >>hello-web/app/public/index.html &&
	  git commit -q -am "\${1:-hello-web: new revision}" && git push -q origin release &&
	  git log -1 --format='pushed %h %s' )
}
# break_release: a revision whose ValidateService fails: the rollout halts
# at the first host and, with rollback: on-failure, that host goes back.
break_release() {
	( cd "$dir/work" && printf '#!/bin/sh\necho broken on purpose >&2\nexit 1\n' >hello-web/scripts/validate.sh &&
	  git commit -q -am "hello-web: broken revision" && git push -q origin release &&
	  git log -1 --format='pushed %h %s' )
}
# fix_release: the working ValidateService again, as a new revision.
fix_release() {
	( cd "$dir/work" && cp "$example/scripts/validate.sh" hello-web/scripts/validate.sh &&
	  git commit -q -am "hello-web: fixed" && git push -q origin release &&
	  git log -1 --format='pushed %h %s' )
}
SH

echo
echo "waiting for the first deployment on all three hosts (Ctrl-C to stop)"
all_serving() {
	for n in 1 2 3; do
		python3 "$example/app/server.py" --get "http://127.0.0.1:808$n/version.txt" >/dev/null 2>&1 || return 1
	done
}
deadline=$((SECONDS + 180))
until all_serving; do
	if [ $SECONDS -ge $deadline ]; then
		echo "try-fleet: not deployed after 180 s; see $dir/h*/agent.log and: $drover --config $dir/h1/drover.yaml status" >&2
		break
	fi
	sleep 1
done
"$drover" --config "$dir/h1/drover.yaml" status || true

cat <<TXT

The fleet runs. In another terminal:

  source $dir/env.sh
  h1 status                 # the whole fleet, from any host
  release                   # push a new revision; watch: watch -n1 "$drover --config $dir/h2/drover.yaml status"
  h2 pause hello-web        # fleet-wide; h3 resume hello-web to go on
  break_release             # a failing revision: it halts and rolls back
  fix_release               # then a working one again
  kill -9 <pid of an agent> # mid-rollout; restart it by hand with the same command from agent.log's dir
  curl -s 127.0.0.1:9951/metrics | grep ^drover_

Ctrl-C here stops the agents and hello-web and deletes $dir.
TXT
wait
