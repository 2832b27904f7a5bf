# %post of the drover rpm. $1: 1 on install, 2 or more on upgrade (the old
# package's %postun restarts the agent then, as Fedora's systemd macros do).
unit=drover.service

if [ "$1" -eq 1 ]; then
	# Enabling only writes symlinks: it works without a running systemd.
	systemctl --no-reload enable "$unit" >/dev/null 2>&1 || :
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || :
		# Never fail the install over it; `systemctl status drover` says why.
		systemctl start "$unit" >/dev/null 2>&1 || :
	else
		echo "drover: systemd is not running; start the agent yourself:" >&2
		echo "  drover agent --config /etc/drover/drover.yaml" >&2
	fi
fi
exit 0
