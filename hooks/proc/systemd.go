package proc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// callTimeout bounds one exchange with systemd.
const callTimeout = 30 * time.Second

// D-Bus error names systemd answers with.
const (
	errUnitExists = "org.freedesktop.systemd1.UnitExists"
	errNoSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
)

// busAddr is one way to reach a systemd manager.
type busAddr struct {
	addr  string
	hello bool // a bus daemon (Hello needed), not systemd's private socket
}

// systemdController runs each script in a transient scope.
type systemdController struct {
	bus   string // "system" or "user"
	addrs []busAddr
	log   *slog.Logger

	mu   sync.Mutex
	conn *sddbus.Conn // guarded by mu; redialled when the connection breaks
}

// newSystemdController connects to the manager on bus ("system" or "user")
// and checks that it answers.
func newSystemdController(ctx context.Context, bus string, getenv func(string) string, log *slog.Logger) (*systemdController, error) {
	c := &systemdController{bus: bus, addrs: busAddrs(bus, getenv), log: log}
	if len(c.addrs) == 0 {
		return nil, fmt.Errorf("connect to systemd (%s bus): neither DBUS_SESSION_BUS_ADDRESS nor XDG_RUNTIME_DIR is set", bus)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.connection(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// busAddrs lists where the manager may answer, best first: the bus, then
// systemd's private socket (which works without a bus daemon).
func busAddrs(bus string, getenv func(string) string) []busAddr {
	if bus == ModeSystem {
		addr := getenv("DBUS_SYSTEM_BUS_ADDRESS")
		if addr == "" {
			addr = "unix:path=/run/dbus/system_bus_socket"
		}
		return []busAddr{{addr, true}, {"unix:path=/run/systemd/private", false}}
	}
	var addrs []busAddr
	xdg := getenv("XDG_RUNTIME_DIR")
	if addr := getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" {
		addrs = append(addrs, busAddr{addr, true})
	} else if xdg != "" {
		addrs = append(addrs, busAddr{"unix:path=" + xdg + "/bus", true})
	}
	if xdg != "" {
		addrs = append(addrs, busAddr{"unix:path=" + xdg + "/systemd/private", false})
	}
	return addrs
}

func (c *systemdController) name() string { return "systemd-" + c.bus }

func (c *systemdController) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	return nil
}

// connection returns a live connection, dialling a new one if there is none
// or it broke (a bus daemon restart, systemd re-exec).
func (c *systemdController) connection(ctx context.Context) (*sddbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.conn.Connected() {
		return c.conn, nil
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	var errs []error
	for _, a := range c.addrs {
		conn, err := dial(ctx, a)
		if err == nil {
			// The manager, not just the bus, must answer.
			if _, err = conn.SystemStateContext(ctx); err == nil {
				c.conn = conn
				return conn, nil
			}
			conn.Close()
		}
		errs = append(errs, fmt.Errorf("%s: %w", a.addr, err))
	}
	return nil, fmt.Errorf("connect to systemd (%s bus): %w", c.bus, errors.Join(errs...))
}

func dial(ctx context.Context, a busAddr) (*sddbus.Conn, error) {
	return sddbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial(a.addr, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			return nil, err
		}
		if a.hello {
			if err := conn.Hello(); err != nil {
				conn.Close()
				return nil, err
			}
		}
		return conn, nil
	})
}

// place creates the script's scope around the held child.
func (c *systemdController) place(ctx context.Context, s Spec, pid int) (tree, error) {
	// Creating the scope is not interrupted by ctx: Run checks ctx right
	// after and stops the scope, rather than leaving a half-made one.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	base := unitName(s.Unit)
	name := base + ".scope"
	for attempt := 1; ; attempt++ {
		err := c.startScope(ctx, name, s, pid)
		if err == nil {
			return &scope{c: c, name: name}, nil
		}
		if dbusErrorName(err) != errUnitExists || attempt == 8 {
			return nil, err
		}
		// Never touch the existing unit: it may hold what an earlier run
		// of this event left running.
		next := base + "-" + randomHex(4) + ".scope"
		c.log.Warn("a unit with the hook's name exists; using another name", "unit", name, "new_unit", next)
		name = next
	}
}

func (c *systemdController) startScope(ctx context.Context, name string, s Spec, pid int) error {
	conn, err := c.connection(ctx)
	if err != nil {
		return err
	}
	props := []sddbus.Property{
		sddbus.PropDescription("drover hook " + s.Path),
		sddbus.PropPids(uint32(pid)),
		{Name: "KillMode", Value: dbus.MakeVariant("control-group")},
		{Name: "SendSIGKILL", Value: dbus.MakeVariant(true)},
		{Name: "TimeoutStopUSec", Value: dbus.MakeVariant(uint64(s.KillGrace / time.Microsecond))},
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
	}
	ch := make(chan string, 1) // buffered: go-systemd's dispatcher must never block on it
	if _, err := conn.StartTransientUnitContext(ctx, name, "fail", props, ch); err != nil {
		return fmt.Errorf("start scope %s: %w", name, err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			return fmt.Errorf("start scope %s: job %s", name, res)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("start scope %s: %w", name, ctx.Err())
	}
}

// scope is one script's transient scope unit.
type scope struct {
	c    *systemdController
	name string
}

func (s *scope) unit() string { return s.name }

// kill stops the scope: systemd sends TERM to every process in it, and the
// stop job ends when they are gone. KILL follows after grace (sent by the
// agent: a fence's grace is shorter than the scope's TimeoutStopUSec, which
// a running scope cannot change), or after TimeoutStopUSec if that is first.
func (s *scope) kill(grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*grace+callTimeout)
	defer cancel()
	conn, err := s.c.connection(ctx)
	if err != nil {
		return err
	}
	ch := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, s.name, "replace", ch); err != nil {
		if dbusErrorName(err) == errNoSuchUnit {
			return nil // already gone
		}
		return fmt.Errorf("stop scope %s: %w", s.name, err)
	}
	hard := time.NewTimer(grace)
	defer hard.Stop()
	for {
		select {
		case <-ch: // done, or failed after KILL: either way the unit is inactive
			return nil
		case <-hard.C:
			conn.KillUnitContext(ctx, s.name, int32(unix.SIGKILL))
		case <-ctx.Done():
			return fmt.Errorf("stop scope %s: %w", s.name, ctx.Err())
		}
	}
}

func dbusErrorName(err error) string {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name
	}
	var pe *dbus.Error
	if errors.As(err, &pe) {
		return pe.Name
	}
	return ""
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// maxUnitBase leaves room in systemd's 255-byte unit names for a uniqueness
// suffix ("-" + 8 hex) and ".scope".
const maxUnitBase = 255 - len(".scope") - 9

// unitName turns s into a valid unit name prefix: bytes other than ASCII
// letters, digits and ":_-." (and a leading ".") become \xNN like
// systemd-escape; '-' is kept, it separates the parts of the name. Names too
// long are cut and end in a hash of the whole, so they stay distinct.
func unitName(s string) string {
	if s == "" {
		s = "drover-hook"
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == ':', c == '_', c == '-', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	name := b.String()
	if len(name) <= maxUnitBase {
		return name
	}
	sum := sha256.Sum256([]byte(s))
	cut := name[:maxUnitBase-17]
	// Do not end inside an \xNN escape.
	if i := strings.LastIndexByte(cut, '\\'); i >= 0 && i > len(cut)-4 {
		cut = cut[:i]
	}
	return cut + "-" + hex.EncodeToString(sum[:8])
}
