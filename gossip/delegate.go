package gossip

import (
	"net"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// delegate is memberlist's Delegate. Every method returns at once: it copies
// what it needs and hands it to the applications' Receivers, which queue it
// for their loops.
type delegate struct{ c *Cluster }

var _ memberlist.Delegate = (*delegate)(nil)

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.c.meta) > limit {
		return nil // cannot happen: New checked it against MetaMaxSize
	}
	return d.c.meta
}

func (d *delegate) NotifyMsg(b []byte) { d.c.receive(b) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	bs := d.c.bq.GetBroadcasts(overhead, limit)
	for _, b := range bs {
		d.c.cfg.Stats.bytes("out", len(b))
	}
	return bs
}

func (d *delegate) LocalState(join bool) []byte {
	b := d.c.localState()
	d.c.cfg.Stats.bytes("out", len(b))
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) { d.c.receive(buf) }

// receive decodes an envelope (copying everything it keeps) and hands its
// messages to their applications' Receivers, one batch per application; a
// message of an application this host does not run is dropped, counted.
func (c *Cluster) receive(b []byte) {
	if len(b) == 0 {
		return
	}
	c.cfg.Stats.bytes("in", len(b))
	ms, leaving, err := decodeEnvelope(b)
	if err != nil {
		c.cfg.Stats.dropped(reasonOf(err))
		return
	}
	if leaving != "" {
		c.leaveIntent(leaving)
		return
	}
	for len(ms) > 0 {
		// messages of one envelope are mostly of one application
		app := ms[0].App
		k := 1
		for k < len(ms) && ms[k].App == app {
			k++
		}
		batch := ms[:k]
		ms = ms[k:]
		c.mu.Lock()
		e := c.apps[app]
		if c.closed {
			e = nil
		}
		c.mu.Unlock()
		if e == nil {
			for range batch {
				c.cfg.Stats.dropped(DropUnknownApp)
			}
			continue
		}
		e.recv.Deliver(batch) // counts what it drops
	}
}

// events is memberlist's EventDelegate. memberlist calls it with its node
// lock held: it copies the node and returns.
//
// memberlist's Node.State is not maintained (its internal state shadows it:
// it always reads alive), so the state comes from the event: join and update
// are alive; a leave is left when the host announced it (leave intent, as
// Serf does), dead otherwise. Suspicion is not reported at all.
type events struct{ c *Cluster }

var _ memberlist.EventDelegate = (*events)(nil)

func (e *events) NotifyJoin(n *memberlist.Node)   { e.c.memberChanged(n, memberlist.StateAlive) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.c.memberChanged(n, memberlist.StateDead) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.c.memberChanged(n, memberlist.StateAlive) }

func (c *Cluster) memberChanged(n *memberlist.Node, state memberlist.NodeStateType) {
	groups, err := decodeMeta(n.Meta)
	if err != nil {
		c.cfg.Stats.dropped(reasonOf(err))
		c.log.Debug("gossip: unreadable node metadata", "node", n.Name, "err", err)
	}
	mi := &memberInfo{
		name:   n.Name,
		addr:   append(net.IP(nil), n.Addr...),
		port:   n.Port,
		state:  state,
		groups: groups,
		since:  time.Now(),
	}
	c.mu.Lock()
	if state == memberlist.StateAlive {
		delete(c.leaving, n.Name)
	} else if t, ok := c.leaving[n.Name]; ok && time.Since(t) < leaveIntentFor {
		mi.state = memberlist.StateLeft
	}
	c.log.Debug("gossip member changed", "member", n.Name, "state", stateName(mi.state))
	eps := c.setMemberLocked(mi)
	c.mu.Unlock()
	tell(eps, mi.name)
}

// tell says host's membership changed to every application.
func tell(eps []*Endpoint, host string) {
	for _, e := range eps {
		e.recv.MemberChanged(host)
	}
}

// setMemberLocked records a member's new state for Members and Reach, and
// returns the Endpoints to tell (after c.mu is released).
func (c *Cluster) setMemberLocked(mi *memberInfo) []*Endpoint {
	c.members[mi.name] = mi
	alive := 0
	for _, m := range c.members {
		if m.state == memberlist.StateAlive {
			alive++
		}
	}
	c.alive.Store(int64(alive))
	c.peersChanged()
	eps := make([]*Endpoint, 0, len(c.apps))
	for _, e := range c.apps {
		eps = append(eps, e)
	}
	return eps
}

// leaveIntent records that host announced a graceful leave; if memberlist
// already reported it gone, it is now left rather than dead.
func (c *Cluster) leaveIntent(host string) {
	if host == c.cfg.NodeName {
		return
	}
	c.mu.Lock()
	c.leaving[host] = time.Now()
	var eps []*Endpoint
	if mi := c.members[host]; mi != nil && mi.state == memberlist.StateDead {
		cp := *mi
		cp.state, cp.since = memberlist.StateLeft, time.Now()
		eps = c.setMemberLocked(&cp)
	}
	c.mu.Unlock()
	tell(eps, host)
}

// broadcast is one gossiped message. Its name is (kind, application, host)
// for a row and (kind, application) for a flag, so that queueing a newer one
// replaces the older one still in the queue.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(memberlist.NamedBroadcast)
	return ok && ob.Name() == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// broadcastName is the identity of a gossiped message in the queue.
func broadcastName(m *rollout.Message) string {
	if m.Kind == rollout.KindRow {
		return "r\x00" + m.App + "\x00" + m.Row.Host
	}
	return "f\x00" + m.App
}
