# %postun of the drover rpm. $1: 0 on erase, 1 or more on upgrade (this runs
# from the old package, after the new one's files are in place). On upgrade,
# restart the agent if it runs; applications started by hooks live in their
# own scopes and are not touched. rpm has no purge: /var/lib/drover (state)
# stays after an erase; delete it by hand if you want it gone.
unit=drover.service

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "$1" -ge 1 ]; then
		systemctl try-restart "$unit" >/dev/null 2>&1 || :
	fi
fi
exit 0
