// Package gossip carries drover's rollout protocol (package reconcile/rollout,
// written down in reconcile/rollout/PROTOCOL.md) over hashicorp/memberlist: membership, the
// encrypted keyring, node metadata (the host's deployment groups), and the
// transport of the protocol's messages.
//
// The cluster has no protocol logic: each application's reconcile loop
// (package reconcile) owns its rollout.Node and talks to its group through
// an Endpoint (endpoint.go), the thin adapter this package is: it sends and
// broadcasts what the loop hands it, tells the loop's Receiver what arrived
// and whose membership changed, and serves the loop's state to push-pull.
// memberlist's delegates never block: they decode, copy and queue.
//
// Transport: direct messages (claims, grants, releases, Paxos, roster
// requests) go by memberlist.SendBestEffort (UDP; the protocol tolerates
// loss) or SendReliable above the UDP payload limit; rows and flags are
// gossiped through a TransmitLimitedQueue where a newer row of the same
// (application, host) replaces an older one; push-pull carries every row and
// flag of every application, so a joiner or a healed partition learns them
// at once. A host's own row is also sent directly to the group's members when
// its phase or claim changes, so the next host learns of a released slot in
// one packet rather than a gossip round.
//
// Membership: a host is a peer of an application when its metadata lists
// the application's group. memberlist's join and update make it alive, its
// leave makes it dead or left (a graceful Leave). memberlist does not report
// suspicion to delegates, and the nodes Members returns alias memberlist's
// own state (reading their State races with memberlist's writes), so a peer
// is alive until memberlist declares it dead; DetectionBound accounts for it.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// Config configures a Cluster.
type Config struct {
	NodeName  string
	Bind      string   // host:port (port 0: any; LocalAddr reports the real one)
	Advertise string   // host:port, or "" for memberlist's choice
	Join      []string // seeds: host:port or DNS names (every address is tried)
	Keys      [][]byte // keyring: Keys[0] encrypts, all decrypt; empty: no encryption
	Groups    []string // this host's deployment groups, published in node metadata
	Params    rollout.MemberlistParams
	// PeersFile keeps the addresses of the members this host last knew
	// alive (a small file in the state directory): at start, and while it
	// is alone, it joins them as well as the seeds, so that a restarted
	// seed (no seeds of its own) finds its fleet again. "": none kept.
	PeersFile string
	Logger    *slog.Logger
	Stats     Stats
	Transport memberlist.Transport // optional; tests inject a faulty one
}

// Stats receives counters for metrics. Nil funcs are skipped. Both are
// called from memberlist's and the applications' goroutines, concurrently.
type Stats struct {
	// Dropped counts a message dropped for reason: DropMalformed,
	// DropOversized, DropVersion, DropUnknownApp, DropUnsent.
	Dropped func(reason string)
	// Bytes counts payload bytes of this package's messages, direction "in"
	// or "out" (memberlist's own traffic is not counted).
	Bytes func(direction string, n int)
}

func (s *Stats) dropped(reason string) {
	if s.Dropped != nil {
		s.Dropped(reason)
	}
}

func (s *Stats) bytes(dir string, n int) {
	if s.Bytes != nil && n > 0 {
		s.Bytes(dir, n)
	}
}

// Member is one host as memberlist sees it.
type Member struct {
	Name   string
	Addr   string // host:port
	State  string // alive, suspect, dead, left
	Groups []string
}

// Errors.
var (
	ErrClosed     = errors.New("gossip cluster closed")
	ErrNotStarted = errors.New("gossip cluster not started")
	ErrNoKeyring  = errors.New("gossip encryption is not configured (no keys)")
)

const (
	// leaveTimeout bounds the graceful Leave of Close.
	leaveTimeout = 2 * time.Second
	// suspicionMaxMult is memberlist's SuspicionMaxTimeoutMult (set explicitly,
	// DetectionBound depends on it).
	suspicionMaxMult = 6
	// retransmitMult is memberlist's RetransmitMult (idem).
	retransmitMult = 4
	// maxReliable bounds the messages waiting for a stream send.
	maxReliable = 256
	// leaveIntentFor is how long a leave intent turns a host's death into a leave.
	leaveIntentFor = time.Minute
	// reconnectFor is how long dead members are retried.
	reconnectFor = 24 * time.Hour
	// udpOverhead is what memberlist adds to a user message in a packet:
	// message type, compression, encryption (version, nonce, tag), label.
	udpOverhead = 128
)

// Cluster is this host's membership in the gossip cluster and the transport
// of its applications' rollout protocol.
type Cluster struct {
	cfg     Config
	log     *slog.Logger
	meta    []byte
	keyring *memberlist.Keyring // nil without encryption
	mlc     *memberlist.Config

	// Set by Start, read-only after.
	ml        *memberlist.Memberlist
	bq        *memberlist.TransmitLimitedQueue
	localAddr string

	stop     chan struct{} // closed by Close
	joined   chan struct{} // closed once joined
	reliable chan reliableMsg

	mu         sync.Mutex // guards the fields below
	started    bool
	closed     bool
	members    map[string]*memberInfo
	apps       map[string]*Endpoint
	states     map[string][]rollout.Message // per application, for push-pull (Endpoint.SetState)
	stateDirty bool                         // stateBytes is stale
	stateBytes []byte
	leaving    map[string]time.Time // hosts that announced a graceful leave
	joinedOnce bool
	alive      atomic.Int64 // members alive or suspect, this host included

	peersDirty    chan struct{} // buffered 1: membership changed since the peers file was written
	peersEvery    time.Duration // the peers file is written at most this often
	peersMu       sync.Mutex    // serialises writes of the peers file; guards the fields below
	saved         []savedPeer   // what the peers file holds (read at start, then written)
	peersFailures int           // failed writes in a row

	closeOnce sync.Once
	wg        sync.WaitGroup
}

type memberInfo struct {
	name   string
	addr   net.IP
	port   uint16
	state  memberlist.NodeStateType
	groups []string
	since  time.Time // when state was last reported
}

func (m *memberInfo) hasGroup(g string) bool { return slices.Contains(m.groups, g) }

type reliableMsg struct {
	to  memberlist.Node
	msg []byte
}

// New validates cfg and builds the cluster; nothing runs until Start.
func New(cfg Config) (*Cluster, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("gossip config: node name is empty")
	}
	if len(cfg.NodeName) > rollout.MaxString {
		return nil, fmt.Errorf("gossip config: node name %q is longer than %d bytes", cfg.NodeName, rollout.MaxString)
	}
	if cfg.Params == (rollout.MemberlistParams{}) {
		cfg.Params = rollout.LANParams
	}
	p := cfg.Params
	if p.ProbeInterval <= 0 || p.ProbeTimeout <= 0 || p.GossipInterval <= 0 || p.SuspicionMult <= 0 {
		return nil, fmt.Errorf("gossip config: memberlist parameters %+v must all be positive", p)
	}
	if p.ProbeTimeout >= p.ProbeInterval {
		return nil, fmt.Errorf("gossip config: probe timeout %s must be shorter than the probe interval %s", p.ProbeTimeout, p.ProbeInterval)
	}
	meta, err := encodeMeta(cfg.Groups)
	if err != nil {
		return nil, fmt.Errorf("gossip config: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:      cfg,
		log:      log,
		meta:     meta,
		stop:     make(chan struct{}),
		joined:   make(chan struct{}),
		reliable: make(chan reliableMsg, maxReliable),
		members:  map[string]*memberInfo{},
		apps:     map[string]*Endpoint{},
		states:   map[string][]rollout.Message{},
		leaving:  map[string]time.Time{},

		peersDirty: make(chan struct{}, 1),
		peersEvery: peersSaveEvery,
	}
	if len(cfg.Keys) > 0 {
		for i, k := range cfg.Keys {
			if err := memberlist.ValidateKey(k); err != nil {
				return nil, fmt.Errorf("gossip config: key %d: %w", i, err)
			}
		}
		c.keyring, err = memberlist.NewKeyring(cfg.Keys[1:], cfg.Keys[0])
		if err != nil {
			return nil, fmt.Errorf("gossip config: keyring: %w", err)
		}
	}

	mlc := memberlist.DefaultLANConfig()
	mlc.Name = cfg.NodeName
	if cfg.Transport != nil {
		mlc.Transport = cfg.Transport
	} else {
		host, port, err := splitHostPort(cfg.Bind, "bind")
		if err != nil {
			return nil, err
		}
		mlc.BindAddr, mlc.BindPort, mlc.AdvertisePort = host, port, port
	}
	if cfg.Advertise != "" {
		host, port, err := splitHostPort(cfg.Advertise, "advertise")
		if err != nil {
			return nil, err
		}
		if net.ParseIP(host) == nil {
			return nil, fmt.Errorf("gossip config: advertise address %q: the host must be an IP address", cfg.Advertise)
		}
		mlc.AdvertiseAddr, mlc.AdvertisePort = host, port
	}
	mlc.ProbeInterval = p.ProbeInterval
	mlc.ProbeTimeout = p.ProbeTimeout
	mlc.SuspicionMult = p.SuspicionMult
	mlc.GossipInterval = p.GossipInterval
	mlc.SuspicionMaxTimeoutMult = suspicionMaxMult
	mlc.RetransmitMult = retransmitMult
	// A restarted host keeps its name; if its address changed (port 0, DHCP)
	// it may reclaim the name once memberlist declared the old one dead.
	mlc.DeadNodeReclaimTime = p.ProbeInterval
	// Our messages are small; compressing each one costs more than it saves.
	mlc.EnableCompression = false
	if c.keyring != nil {
		mlc.Keyring = c.keyring
		mlc.GossipVerifyIncoming, mlc.GossipVerifyOutgoing = true, true
	}
	mlc.Logger = stdLogger(log)
	mlc.Delegate = &delegate{c: c}
	mlc.Events = &events{c: c}
	c.mlc = mlc
	return c, nil
}

func splitHostPort(hp, what string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("gossip config: %s address %q: %w", what, hp, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("gossip config: %s address %q: bad port: %w", what, hp, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, int(port), nil
}

// stdLogger sends memberlist's log lines to l at debug level.
func stdLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	if w.l.Enabled(context.Background(), slog.LevelDebug) {
		w.l.Debug(strings.TrimSpace(string(p)), "component", "memberlist")
	}
	return len(p), nil
}

// Start creates the memberlist, starts the stream sender and starts joining the
// seeds in the background. ctx bounds the start only: the cluster runs
// until Close.
func (c *Cluster) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("start gossip: %w", err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.started {
		c.mu.Unlock()
		return errors.New("start gossip: already started")
	}
	c.started = true
	c.mu.Unlock()

	c.bq = &memberlist.TransmitLimitedQueue{RetransmitMult: retransmitMult, NumNodes: c.numAlive}
	ml, err := memberlist.Create(c.mlc)
	if err != nil {
		return fmt.Errorf("start gossip: create memberlist: %w", err)
	}
	c.ml = ml
	c.localAddr = ml.LocalNode().Address()
	c.log.Info("gossip started", "node", c.cfg.NodeName, "addr", c.localAddr, "encrypted", c.keyring != nil, "groups", c.cfg.Groups)

	c.loadSavedPeers()
	c.wg.Add(2)
	go c.sendReliableLoop()
	go c.joinLoop()
	if c.cfg.PeersFile != "" {
		c.wg.Add(1)
		go c.peersLoop()
	}
	return nil
}

// WaitJoined returns once the cluster contacted at least one seed (a seed
// that is this host counts, so that a fleet whose seed list names every host
// can start), at once when there are no seeds.
func (c *Cluster) WaitJoined(ctx context.Context) error {
	select {
	case <-c.joined:
		return nil
	case <-c.stop:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("wait for gossip join: %w", context.Cause(ctx))
	}
}

// LocalAddr is the address memberlist advertises (host:port), "" before Start.
func (c *Cluster) LocalAddr() string { return c.localAddr }

// Members returns every host memberlist told us about, this one included,
// sorted by name. Dead and left hosts stay listed.
func (c *Cluster) Members() []Member {
	c.mu.Lock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, Member{
			Name:   m.name,
			Addr:   net.JoinHostPort(m.addr.String(), strconv.Itoa(int(m.port))),
			State:  stateName(m.state),
			Groups: slices.Clone(m.groups),
		})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// numAlive is the cluster size the broadcast queue scales retransmissions by.
func (c *Cluster) numAlive() int { return max(1, int(c.alive.Load())) }

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// AddKey installs a key that decrypts (step 1 of a rotation, on every host).
func (c *Cluster) AddKey(k []byte) error {
	if c.keyring == nil {
		return ErrNoKeyring
	}
	if err := c.keyring.AddKey(k); err != nil {
		return fmt.Errorf("add gossip key: %w", err)
	}
	return nil
}

// UseKey makes an installed key the one that encrypts (step 2, once every
// host has it).
func (c *Cluster) UseKey(k []byte) error {
	if c.keyring == nil {
		return ErrNoKeyring
	}
	if err := c.keyring.UseKey(k); err != nil {
		return fmt.Errorf("use gossip key: %w", err)
	}
	return nil
}

// RemoveKey drops a key that no host encrypts with anymore (step 3). The
// primary key cannot be removed.
func (c *Cluster) RemoveKey(k []byte) error {
	if c.keyring == nil {
		return ErrNoKeyring
	}
	if err := c.keyring.RemoveKey(k); err != nil {
		return fmt.Errorf("remove gossip key: %w", err)
	}
	return nil
}

// Close leaves the cluster gracefully (bounded by 2 s), shuts memberlist
// down, stops every goroutine and waits for them. It is idempotent.
func (c *Cluster) Close() error {
	var err error
	c.closeOnce.Do(func() { err = c.shutdown(true) })
	return err
}

// crash stops this host without a graceful leave: the others see it die.
// Tests use it to model a killed agent.
func (c *Cluster) crash() {
	c.closeOnce.Do(func() { _ = c.shutdown(false) })
}

func (c *Cluster) shutdown(leave bool) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	close(c.stop)
	var errs []error
	if c.ml != nil {
		if leave {
			if c.cfg.PeersFile != "" {
				c.savePeersNow() // the members alive up to the end, for the next start
			}
			c.announceLeave()
			if err := c.ml.Leave(leaveTimeout); err != nil {
				c.log.Warn("gossip leave did not complete", "err", err)
			}
		}
		if err := c.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down memberlist: %w", err))
		}
	}
	c.wg.Wait()
	return errors.Join(errs...)
}

// announceLeave tells the other members that this host leaves on purpose,
// so that they record it as left (removed from rosters at once), not dead:
// memberlist's own leave message does not tell its receivers the difference.
// The intent goes directly to every alive member and by gossip.
func (c *Cluster) announceLeave() {
	b := appendLeave(nil, c.cfg.NodeName)
	c.bq.QueueBroadcast(&broadcast{name: "l\x00" + c.cfg.NodeName, msg: b})
	c.mu.Lock()
	var to []memberlist.Node
	for _, m := range c.members {
		if m.state == memberlist.StateAlive && m.name != c.cfg.NodeName {
			to = append(to, memberlist.Node{Name: m.name, Addr: m.addr, Port: m.port})
		}
	}
	c.mu.Unlock()
	for i := range to {
		c.cfg.Stats.bytes("out", len(b))
		if err := c.ml.SendBestEffort(&to[i], b); err != nil {
			c.log.Debug("gossip leave intent not sent", "to", to[i].Name, "err", err)
		}
	}
}

// RejoinInterval is the longest wait between two join attempts of a host
// that has no other member alive (attempts back off from half a probe
// interval up to it), and between two reconnects of the dead.
func RejoinInterval(p rollout.MemberlistParams) time.Duration { return 30 * p.ProbeInterval }

// joinLoop joins the seeds and the saved peers (PeersFile), retrying
// forever with capped, jittered backoff while no other member is alive;
// afterwards it reconnects to members declared dead, and joins the seeds
// and saved peers again whenever this host finds itself alone. A host with
// no seeds is its own seed: it counts as joined at once (WaitJoined), and
// joins its saved peers, if any, in the background.
func (c *Cluster) joinLoop() {
	defer c.wg.Done()
	first := max(c.cfg.Params.ProbeInterval/2, 50*time.Millisecond)
	limit := RejoinInterval(c.cfg.Params)
	backoff := first
	joined := len(c.cfg.Join) == 0
	if joined {
		c.markJoined()
	}
	failures := 0 // attempts in a row that left this host alone
	for attempt := 0; ; attempt++ {
		wait := jitter(limit)
		alone := c.ml.NumMembers() <= 1
		if !joined || alone {
			seeds, peers := c.joinTargets()
			if attempt == 0 {
				switch {
				case len(seeds)+len(peers) == 0:
					c.log.Info("gossip: no seeds and no saved peers; waiting for other hosts to join this one")
				case len(c.cfg.Join) == 0:
					c.log.Info("gossip: no seeds (this host is a seed); joining the peers it last knew alive", "peers", peerNames(peers))
				default:
					c.log.Info("gossip joining", "seeds", seeds, "saved_peers", peerNames(peers))
				}
			}
			if len(seeds)+len(peers) > 0 {
				n, err := c.join(seeds, peers)
				others := c.ml.NumMembers() - 1
				if n > 0 {
					c.markJoined() // a seed that is this host counts
				}
				joined = joined || n > 0
				if others > 0 {
					c.log.Info("gossip joined", "seeds", seeds, "saved_peers", peerNames(peers), "contacted", n, "members", others+1)
					failures, backoff = 0, first
				} else {
					failures++
					if failures == 1 || failures%10 == 0 {
						attrs := []any{"seeds", seeds, "saved_peers", peerNames(peers), "attempts", failures, "retry_within", backoff}
						if n > 0 {
							c.log.Info("gossip: only this host answered (it is a seed); no other member is alive yet; retrying", attrs...)
						} else {
							c.log.Warn("gossip join: none of the seeds or saved peers answered; retrying", append(attrs, "err", err)...)
						}
					}
					wait = jitter(backoff)
					backoff = min(2*backoff, limit)
				}
			}
		} else {
			c.reconnect()
		}
		t := time.NewTimer(wait)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// joinTargets is what a join attempt tries: every seed, and up to
// maxJoinPeers saved peers (a random choice each attempt; not this host).
func (c *Cluster) joinTargets() (seeds []string, peers []savedPeer) {
	seeds = slices.Clone(c.cfg.Join)
	for _, p := range c.savedPeers() {
		if p.Name != c.cfg.NodeName && p.Addr != c.localAddr && !slices.Contains(seeds, p.Addr) {
			peers = append(peers, p)
		}
	}
	rand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	return seeds, peers[:min(len(peers), maxJoinPeers)]
}

// join contacts the seeds and peers all at once (an unreachable address
// costs memberlist's TCP timeout; one after the other they would add up),
// returning how many answered (this host counts, when it is a seed).
func (c *Cluster) join(seeds []string, peers []savedPeer) (int, error) {
	addrs := slices.Clone(seeds)
	for _, p := range peers {
		addrs = append(addrs, p.Addr)
	}
	type res struct {
		n   int
		err error
	}
	out := make(chan res, len(addrs))
	for _, a := range addrs {
		go func() {
			n, err := c.ml.Join([]string{a})
			out <- res{n, err}
		}()
	}
	total := 0
	var errs []error
	for range addrs {
		r := <-out
		total += r.n
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	return total, errors.Join(errs...)
}

// reconnect tries to join a few members memberlist declared dead (not
// left), as Serf does: memberlist stops gossiping to the dead after
// GossipToTheDeadTime, so without it two sides of a partition that lasted
// longer would never merge again.
func (c *Cluster) reconnect() {
	var addrs []string
	c.mu.Lock()
	for _, m := range c.members {
		if m.state == memberlist.StateDead && time.Since(m.since) < reconnectFor {
			addrs = append(addrs, net.JoinHostPort(m.addr.String(), strconv.Itoa(int(m.port))))
		}
	}
	c.mu.Unlock()
	if len(addrs) == 0 {
		return
	}
	rand.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
	addrs = addrs[:min(len(addrs), 3)]
	if n, err := c.ml.Join(addrs); n > 0 {
		c.log.Info("gossip reconnected to members it had declared dead", "contacted", n)
	} else {
		c.log.Debug("gossip reconnect failed", "addrs", addrs, "err", err)
	}
}

func (c *Cluster) markJoined() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.joinedOnce {
		c.joinedOnce = true
		close(c.joined)
	}
}

// jitter returns a duration in [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

// sendReliableLoop sends the messages too large for a packet over streams,
// one at a time, so that a slow peer never blocks an application's loop.
func (c *Cluster) sendReliableLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.stop:
			return
		case m := <-c.reliable:
			if err := c.ml.SendReliable(&m.to, m.msg); err != nil {
				c.log.Debug("gossip reliable send failed", "to", m.to.Name, "err", err)
			}
		}
	}
}

// DetectionBound bounds how long memberlist, in a cluster of about n nodes
// with parameters p, takes from a node's crash until every live member has
// declared it dead: up to a full probe round before some member probes it
// (n probe intervals, the failed probe's own interval included), the longest
// suspicion (SuspicionMaxTimeoutMult × the suspicion timeout, reached when
// no other member confirms), and the spread of the dead message (its
// retransmissions, one gossip interval each). It assumes healthy observers
// (memberlist's awareness multiplier at 1).
func DetectionBound(p rollout.MemberlistParams, n int) time.Duration {
	n = max(n, 1)
	probe := time.Duration(n) * p.ProbeInterval
	suspicion := suspicionMaxMult * rollout.SuspicionTimeout(p, n)
	spread := time.Duration(retransmitMult*int(math.Ceil(math.Log10(float64(n+1))))) * p.GossipInterval
	return probe + suspicion + spread
}

// CrashBound bounds how long a slot held by a host that crashed stays
// blocked, measured from the crash: memberlist's detection (DetectionBound),
// then the Node keeps counting a dead holder's slot as taken for one lease
// (its grants certainly expired by then, their last renewal being before the
// crash), then one claim round (t.CrashBound() = lease + claim timeout).
func CrashBound(t rollout.Timing, p rollout.MemberlistParams, n int) time.Duration {
	return DetectionBound(p, n) + t.CrashBound()
}

var _ io.Writer = logWriter{}
