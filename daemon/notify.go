package daemon

import (
	"fmt"
	"os"
	"strconv"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Notifier tells the service manager how the agent is doing (sd_notify).
// Without NOTIFY_SOCKET every call is a no-op.
type Notifier interface {
	Ready(status string)
	Reloading()
	Status(status string)
	Watchdog()
	Stopping()
	// WatchdogInterval is how often Watchdog must be called, 0 when the
	// unit has no WatchdogSec.
	WatchdogInterval() time.Duration
}

// systemdNotifier is the Notifier of an agent started by systemd.
type systemdNotifier struct {
	socket   string
	watchdog time.Duration
	onError  func(error)
}

// NewSystemdNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID from
// the environment, once. onError receives send failures (rate-limit logging
// in it).
func NewSystemdNotifier(onError func(error)) Notifier {
	n := &systemdNotifier{socket: os.Getenv("NOTIFY_SOCKET"), onError: onError}
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		pid := os.Getenv("WATCHDOG_PID")
		if pid == "" || pid == strconv.Itoa(os.Getpid()) {
			// Ping at half the interval, as sd_watchdog_enabled(3) advises.
			n.watchdog = time.Duration(us) * time.Microsecond / 2
		}
	}
	return n
}

func (n *systemdNotifier) send(state string) {
	if n.socket == "" {
		return
	}
	// SdNotify reads NOTIFY_SOCKET itself; it is the same value we read.
	if _, err := sddaemon.SdNotify(false, state); err != nil && n.onError != nil {
		n.onError(fmt.Errorf("sd_notify %q: %w", state, err))
	}
}

func (n *systemdNotifier) Ready(status string) {
	n.send(sddaemon.SdNotifyReady + "\nSTATUS=" + status)
}

func (n *systemdNotifier) Reloading() {
	// systemd 253 wants MONOTONIC_USEC with RELOADING=1 for Type=notify-reload.
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", sddaemon.SdNotifyReloading, monotonicUsec()))
}

func (n *systemdNotifier) Status(status string) { n.send("STATUS=" + status) }
func (n *systemdNotifier) Watchdog()            { n.send(sddaemon.SdNotifyWatchdog) }
func (n *systemdNotifier) Stopping()            { n.send(sddaemon.SdNotifyStopping) }

func (n *systemdNotifier) WatchdogInterval() time.Duration { return n.watchdog }
