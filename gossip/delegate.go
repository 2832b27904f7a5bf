package gossip

import (
	"net"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// delegate is memberlist's Delegate. Every method returns at once: it copies
// what it needs, enqueues it for the driver and pokes it.
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
	p := d.c.snapshot.Load()
	if p == nil {
		return nil
	}
	d.c.cfg.Stats.bytes("out", len(*p))
	return *p
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) { d.c.receive(buf) }

// receive decodes an envelope (copying everything it keeps) and queues its
// messages for the driver; a full queue drops them, counted.
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
	c.mu.Lock()
	room := maxInbox - len(c.inMsgs)
	if c.closed {
		room = 0
	}
	keep := ms[:min(len(ms), max(room, 0))]
	c.inMsgs = append(c.inMsgs, keep...)
	c.mu.Unlock()
	for range len(ms) - len(keep) {
		c.cfg.Stats.dropped(DropOverflow)
	}
	if len(keep) > 0 {
		c.kick()
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
	c.setMemberLocked(mi)
	c.mu.Unlock()
	c.kick()
}

// setMemberLocked records a member's new state for Members and the driver.
func (c *Cluster) setMemberLocked(mi *memberInfo) {
	c.members[mi.name] = mi
	c.changed[mi.name] = struct{}{}
	alive := 0
	for _, m := range c.members {
		if m.state == memberlist.StateAlive {
			alive++
		}
	}
	c.alive.Store(int64(alive))
	c.peersChanged()
}

// leaveIntent records that host announced a graceful leave; if memberlist
// already reported it gone, it is now left rather than dead.
func (c *Cluster) leaveIntent(host string) {
	if host == c.cfg.NodeName {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leaving[host] = time.Now()
	if mi := c.members[host]; mi != nil && mi.state == memberlist.StateDead {
		cp := *mi
		cp.state, cp.since = memberlist.StateLeft, time.Now()
		c.setMemberLocked(&cp)
		c.kick()
	}
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
