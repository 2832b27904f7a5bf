# %preun of the drover rpm. $1: 0 on erase, 1 or more on upgrade. On erase,
# stop and disable the agent; applications started by hooks live in their own
# scopes and keep running.
unit=drover.service

if [ "$1" -eq 0 ]; then
	if [ -d /run/systemd/system ]; then
		systemctl stop "$unit" >/dev/null 2>&1 || :
	fi
	systemctl --no-reload disable "$unit" >/dev/null 2>&1 || :
fi
exit 0
