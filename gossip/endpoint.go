package gossip

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// eagerMaxGroup: own rows go directly to the group's members (FanOut) only
// in groups up to this size; larger groups rely on gossip.
const eagerMaxGroup = 128

// Receiver takes what the cluster receives for one application. Its methods
// are called from memberlist's goroutines and must not block
// (reconcile.App implements it).
type Receiver interface {
	// Deliver takes messages from peers and returns how many it kept.
	Deliver(ms []rollout.Message) int
	// MemberChanged says host's membership changed (ask Reach).
	MemberChanged(host string)
}

// EndpointConfig registers one application of this host.
type EndpointConfig struct {
	App, Group string
	Receiver   Receiver
	// Timing: nil derives it once, at registration, with
	// rollout.TimingFor(Params, n), n = GroupSize or, when that is 0, the
	// number of hosts memberlist shows in the group at that moment (this one
	// included). It is fixed for the Endpoint's life: n only scales
	// memberlist's suspicion timeout (log10 n), and every host honours the
	// lease its claimant asks for.
	Timing    *rollout.Timing
	GroupSize int
}

// Endpoint is one application's transport over the cluster
// (reconcile.Transport and reconcile.Link): direct messages as datagrams
// (and over a stream when Reliable or too large), broadcasts through
// memberlist's gossip queue, fan-out to the group's alive members, the
// membership verdict per host, and the state push-pull carries. It has no
// goroutine of its own; every method returns at once.
type Endpoint struct {
	c      *Cluster
	app    string
	group  string
	recv   Receiver
	timing rollout.Timing
}

var errDuplicateApp = errors.New("already registered")

// Endpoint registers an application. The group must be one of the Config's
// Groups (peers find this host through them). Messages for the application
// go to cfg.Receiver from now until Close.
func (c *Cluster) Endpoint(cfg EndpointConfig) (*Endpoint, error) {
	if cfg.App == "" || len(cfg.App) > rollout.MaxString {
		return nil, fmt.Errorf("register app %q: name must be 1..%d bytes", cfg.App, rollout.MaxString)
	}
	if !slices.Contains(c.cfg.Groups, cfg.Group) {
		return nil, fmt.Errorf("register app %q: group %q is not one of this host's groups %q", cfg.App, cfg.Group, c.cfg.Groups)
	}
	if cfg.Receiver == nil {
		return nil, fmt.Errorf("register app %q: no receiver", cfg.App)
	}
	e := &Endpoint{c: c, app: cfg.App, group: cfg.Group, recv: cfg.Receiver}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := c.apps[cfg.App]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("register app %q: %w", cfg.App, errDuplicateApp)
	}
	if cfg.Timing != nil {
		e.timing = *cfg.Timing
	} else {
		n := cfg.GroupSize
		if n <= 0 {
			n = 1 // this host
			for _, m := range c.members {
				if m.name != c.cfg.NodeName && m.hasGroup(cfg.Group) && m.state == memberlist.StateAlive {
					n++
				}
			}
		}
		e.timing = rollout.TimingFor(c.cfg.Params, n)
	}
	c.apps[cfg.App] = e
	var hosts []string
	for name := range c.members {
		hosts = append(hosts, name)
	}
	c.mu.Unlock()
	for _, h := range hosts { // what memberlist knows already
		e.recv.MemberChanged(h)
	}
	return e, nil
}

// Timing returns the protocol timeouts the application runs with.
func (e *Endpoint) Timing() rollout.Timing { return e.timing }

// Close unregisters the application: its messages are dropped from now on
// and push-pull no longer carries its state.
func (e *Endpoint) Close() {
	c := e.c
	c.mu.Lock()
	if c.apps[e.app] == e {
		delete(c.apps, e.app)
		delete(c.states, e.app)
		c.stateDirty = true
	}
	c.mu.Unlock()
}

// SetState sets the application's full state (every row it knows, the
// flag, the roster) that push-pull sends to peers.
func (e *Endpoint) SetState(ms []rollout.Message) {
	c := e.c
	c.mu.Lock()
	if c.apps[e.app] == e {
		c.states[e.app] = ms
		c.stateDirty = true
	}
	c.mu.Unlock()
}

// Reach is memberlist's verdict on host for the application's group: a
// host whose metadata does not list the group is not a peer (left); a host
// memberlist does not know is dead to the protocol (its row may have come
// by gossip from a host that outlived it). peer: memberlist knows host
// and its metadata lists the group.
func (e *Endpoint) Reach(host string) (rollout.Reach, bool) {
	e.c.mu.Lock()
	defer e.c.mu.Unlock()
	mi := e.c.members[host]
	return reachOf(mi, e.group), mi != nil && mi.hasGroup(e.group)
}

func reachOf(mi *memberInfo, group string) rollout.Reach {
	if mi == nil {
		return rollout.ReachDead
	}
	switch mi.state {
	case memberlist.StateDead:
		return rollout.ReachDead
	case memberlist.StateLeft:
		return rollout.ReachLeft
	}
	if !mi.hasGroup(group) {
		return rollout.ReachLeft
	}
	return rollout.ReachAlive
}

// aliveNode returns the address of host if memberlist calls it alive.
func (c *Cluster) aliveNode(host string) (memberlist.Node, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mi := c.members[host]
	if mi == nil || mi.state != memberlist.StateAlive {
		return memberlist.Node{}, false
	}
	return memberlist.Node{Name: mi.name, Addr: mi.addr, Port: mi.port}, true
}

// Send sends a direct message to a host memberlist calls alive (to others
// it is lost, as the protocol allows): as a datagram, and also over a
// stream when it is Reliable; over a stream only when it is too large for a
// datagram.
func (e *Endpoint) Send(env *rollout.Envelope) {
	c := e.c
	to, ok := c.aliveNode(env.To)
	if !ok {
		return
	}
	b := appendMessage(nil, &env.Msg)
	c.sendTo(&to, b)
	if env.Msg.Reliable() && len(b) <= c.udpLimit() {
		// Also over TCP (a duplicate is harmless): a host whose datagrams
		// do not get through must still learn the roster (PROTOCOL.md §8).
		c.sendReliable(&to, b)
	}
}

// Broadcast queues a row or flag for gossip; a newer one of the same
// (application, host) replaces it in the queue.
func (e *Endpoint) Broadcast(m *rollout.Message) {
	b := appendMessage(nil, m)
	if len(b) > maxBroadcast {
		e.c.cfg.Stats.dropped(DropUnsent) // push-pull still carries it
		return
	}
	e.c.bq.QueueBroadcast(&broadcast{name: broadcastName(m), msg: b})
}

// FanOut sends m in one datagram to every alive member of the group, in
// groups of up to eagerMaxGroup hosts.
func (e *Endpoint) FanOut(m *rollout.Message) {
	c := e.c
	b := appendMessage(nil, m)
	if len(b) > c.udpLimit() {
		return
	}
	c.mu.Lock()
	peers := make([]memberlist.Node, 0, len(c.members))
	for _, mi := range c.members {
		if mi.name != c.cfg.NodeName && mi.state == memberlist.StateAlive && mi.hasGroup(e.group) {
			peers = append(peers, memberlist.Node{Name: mi.name, Addr: mi.addr, Port: mi.port})
		}
	}
	c.mu.Unlock()
	if len(peers) > eagerMaxGroup {
		return
	}
	for i := range peers {
		c.sendTo(&peers[i], b)
	}
}

func (c *Cluster) udpLimit() int { return c.mlc.UDPBufferSize - udpOverhead }

func (c *Cluster) sendTo(to *memberlist.Node, b []byte) {
	c.cfg.Stats.bytes("out", len(b))
	if len(b) <= c.udpLimit() {
		if err := c.ml.SendBestEffort(to, b); err != nil {
			c.log.Debug("gossip send failed", "to", to.Name, "err", err)
		}
		return
	}
	c.sendReliable(to, b)
}

// sendReliable queues b for the stream sender; a full queue drops it.
func (c *Cluster) sendReliable(to *memberlist.Node, b []byte) {
	select {
	case c.reliable <- reliableMsg{to: *to, msg: b}:
	default:
		c.cfg.Stats.dropped(DropUnsent)
	}
}

// localState is the push-pull state: every application's, encoded once
// per change.
func (c *Cluster) localState() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stateDirty {
		var all []rollout.Message
		for _, name := range slices.Sorted(maps.Keys(c.states)) {
			all = append(all, c.states[name]...)
		}
		c.stateBytes = encodeState(all)
		c.stateDirty = false
	}
	return c.stateBytes
}
