package gossip

import (
	"fmt"
	"slices"
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

const (
	// maxSnapshotEvery bounds how often the driver rebuilds the push-pull
	// state and the Status snapshots when they changed.
	maxSnapshotEvery = 100 * time.Millisecond
	// minSleep keeps the driver from spinning on a wake-up in the past.
	minSleep = time.Millisecond
	// persist retries back off from the first to the last delay.
	persistRetryFirst = 50 * time.Millisecond
	persistRetryMax   = 5 * time.Second
	// eagerMaxGroup: own rows go directly to the group's members on a phase
	// change only in groups up to this size; larger groups rely on gossip.
	eagerMaxGroup = 128
)

// driver owns every Node. Only its goroutine touches its fields.
type driver struct {
	c         *Cluster
	self      string
	apps      map[string]*appState
	members   map[string]*memberInfo // copy of the cluster's, updated from its changes
	udpLimit  int
	snapEvery time.Duration
	snapDirty bool          // the push-pull state is stale
	snapAt    time.Duration // earliest next rebuild
}

// appState is the driver's side of one App.
type appState struct {
	a    *App
	node *rollout.Node
	told map[string]rollout.Reach // what PeerChanged last said per host

	pending    *rollout.Persisted // not yet stored
	held       []Decision         // waiting for pending to be stored
	retryAt    time.Duration      // next Persist attempt while pending (0: now)
	retryDelay time.Duration
	failures   int

	dirty   bool          // Status snapshot is stale
	bake    time.Duration // Node.BakeUntil in the last snapshot
	lastOwn rollout.Row
	hasOwn  bool
	flag    rollout.Flag // the pause flag last logged
}

func newDriver(c *Cluster) *driver {
	return &driver{
		c:         c,
		self:      c.cfg.NodeName,
		apps:      map[string]*appState{},
		members:   map[string]*memberInfo{},
		udpLimit:  c.mlc.UDPBufferSize - udpOverhead,
		snapEvery: min(c.cfg.Params.GossipInterval, maxSnapshotEvery),
	}
}

func (d *driver) run() {
	defer d.c.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		wake := d.step()
		t.Reset(max(wake-d.c.now(), minSleep))
		select {
		case <-d.c.stop:
			return
		case <-d.c.poke:
		case <-t.C:
		}
	}
}

// step consumes every queued input, runs due timers, handles every Node's
// output and returns the local time of the next wake-up.
func (d *driver) step() time.Duration {
	c := d.c
	now := c.now()
	c.mu.Lock()
	calls, msgs := c.calls, c.inMsgs
	c.calls, c.inMsgs = nil, nil
	changed := make([]*memberInfo, 0, len(c.changed))
	for name := range c.changed {
		if mi := c.members[name]; mi != nil {
			cp := *mi
			changed = append(changed, &cp)
		}
	}
	clear(c.changed)
	c.mu.Unlock()

	for _, k := range calls {
		d.apply(now, k)
	}
	for _, mi := range changed {
		d.members[mi.name] = mi
		for _, s := range d.apps {
			d.tellMember(now, s, mi.name)
		}
	}
	// A burst goes to each Node as one batch: the Node orders it
	// (rollout.Node.ReceiveBatch), so the simulator runs the same rules.
	d.route(now, msgs)
	for _, s := range d.apps {
		if s.node.NextWake() <= now {
			s.node.Tick(now)
		}
		d.flush(now, s)
	}
	d.snapshots(now)
	return d.nextWake(now)
}

func (d *driver) nextWake(now time.Duration) time.Duration {
	w := now + time.Hour
	for _, s := range d.apps {
		w = min(w, s.node.NextWake())
		if s.pending != nil {
			w = min(w, s.retryAt)
		}
		if s.dirty {
			w = min(w, d.snapAt)
		}
	}
	if d.snapDirty {
		w = min(w, d.snapAt)
	}
	return w
}

func (d *driver) apply(now time.Duration, k call) {
	a := k.app
	if k.kind == callRegister {
		s := &appState{a: a, told: map[string]rollout.Reach{}, dirty: true}
		s.node = rollout.NewNode(rollout.Config{Host: d.self, App: a.name, Group: a.group, Timing: a.timing, BootstrapExpect: d.c.cfg.BootstrapExpect, Nonce: d.c.cfg.Nonce}, a.cfg.State, now)
		s.flag = s.node.Flag()
		if s.flag.Paused {
			d.c.log.Info(fmt.Sprintf("restored fleet-wide pause of %s (set by %s); no host starts it until drover resume %s", a.name, s.flag.Node, a.name),
				"app", a.name, "set_by", s.flag.Node, "flag_clock", s.flag.Clock)
		}
		d.apps[a.name] = s
		for name := range d.members {
			d.tellMember(now, s, name)
		}
		d.snapDirty = true
		return
	}
	s := d.apps[a.name]
	if s == nil || s.a != a {
		return // closed
	}
	s.dirty = true
	switch k.kind {
	case callUnregister:
		delete(d.apps, a.name)
		d.snapDirty = true
	case callDesired:
		s.node.SetDesired(now, k.desired)
	case callPaused:
		s.node.SetPaused(now, k.paused)
	case callProgress:
		s.node.Progress(now, k.deployment, k.event)
	case callFinished:
		s.node.Finished(now, k.deployment, k.ok, k.result)
	case callForceRemove:
		s.node.ForceRemove(now, k.host)
	case callGateSample:
		s.node.GateSample(now, k.gate, k.step, k.sample)
	}
}

// reachOf is what memberlist says about host for an application of group:
// a host whose metadata does not list the group is not a peer (left); a host
// memberlist does not know is dead to the protocol (its row may have come by
// gossip from a host that outlived it).
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

// tellMember feeds a membership change to one Node, for the hosts that are
// (or were) its peers.
func (d *driver) tellMember(now time.Duration, s *appState, host string) {
	mi := d.members[host]
	if _, known := s.told[host]; !known && (mi == nil || !mi.hasGroup(s.a.group)) {
		return
	}
	d.setReach(now, s, host, reachOf(mi, s.a.group))
}

func (d *driver) setReach(now time.Duration, s *appState, host string, r rollout.Reach) {
	if host == d.self {
		return
	}
	if old, known := s.told[host]; known && old == r {
		return
	}
	s.told[host] = r
	s.node.PeerChanged(now, host, r)
	s.dirty = true
}

// route feeds received messages to their applications' Nodes, one batch
// per Node.
func (d *driver) route(now time.Duration, msgs []rollout.Message) {
	if len(msgs) == 0 {
		return
	}
	batches := map[*appState][]*rollout.Message{}
	for i := range msgs {
		m := &msgs[i]
		s := d.apps[m.App]
		if s == nil {
			d.c.cfg.Stats.dropped(DropUnknownApp)
			continue
		}
		if m.Kind == rollout.KindRow {
			if _, known := s.told[m.Row.Host]; !known {
				d.setReach(now, s, m.Row.Host, reachOf(d.members[m.Row.Host], s.a.group))
			}
		}
		batches[s] = append(batches[s], m)
	}
	for s, b := range batches {
		before := s.node.Stats().StaleClaims
		s.node.ReceiveBatch(now, b)
		for range s.node.Stats().StaleClaims - before {
			d.c.cfg.Stats.dropped(DropStale)
		}
		s.dirty = true
	}
}

// flush handles one Node's output: persist first; only once that
// succeeded, send and broadcast the messages and deliver the decisions
// (PROTOCOL.md A2).
func (d *driver) flush(now time.Duration, s *appState) {
	o := s.node.TakeOutput()
	if f := s.node.Flag(); f != s.flag {
		s.flag = f
		what := "resumed"
		if f.Paused {
			what = "paused"
		}
		d.c.log.Info(fmt.Sprintf("%s %s fleet-wide by %s", s.a.name, what, f.Node), "app", s.a.name, "set_by", f.Node, "flag_clock", f.Clock)
	}
	if o.Persist != nil {
		s.pending = o.Persist
	}
	for _, dec := range o.Decisions {
		var at time.Time
		if dec.Fence > 0 {
			at = d.c.timeAt(dec.Fence)
		}
		s.held = append(s.held, Decision{Decision: dec, FenceAt: at})
	}
	if len(o.Broadcast) > 0 || o.Persist != nil || len(o.Decisions) > 0 {
		s.dirty = true
	}
	if len(o.Broadcast) > 0 {
		d.snapDirty = true
	}
	if s.pending != nil {
		if !d.persist(now, s) {
			for range len(o.Send) + len(o.Broadcast) {
				d.c.cfg.Stats.dropped(DropUnsent)
			}
			return
		}
	}
	for i := range o.Send {
		d.send(&o.Send[i])
	}
	for i := range o.Broadcast {
		d.broadcast(s, &o.Broadcast[i])
	}
	if len(s.held) > 0 {
		s.a.deliver(s.held)
		s.held = nil
	}
}

// persist stores s.pending, reporting whether it is stored.
func (d *driver) persist(now time.Duration, s *appState) bool {
	if now < s.retryAt {
		return false
	}
	if s.a.cfg.Persist != nil {
		if err := s.a.cfg.Persist(*s.pending); err != nil {
			s.failures++
			s.retryDelay = min(max(2*s.retryDelay, persistRetryFirst), persistRetryMax)
			s.retryAt = now + s.retryDelay
			if s.failures == 1 || s.failures%20 == 0 {
				d.c.log.Error("cannot store rollout state; holding this host's messages and decisions until it is stored",
					"app", s.a.name, "attempts", s.failures, "retry_in", s.retryDelay, "err", err)
			}
			return false
		}
		if s.failures > 0 {
			d.c.log.Info("rollout state stored again", "app", s.a.name, "after_attempts", s.failures)
		}
	}
	s.pending, s.retryAt, s.retryDelay, s.failures = nil, 0, 0, 0
	return true
}

func (d *driver) send(env *rollout.Envelope) {
	mi := d.members[env.To]
	if mi == nil || mi.state != memberlist.StateAlive {
		return // the protocol treats it as lost
	}
	b := appendMessage(nil, &env.Msg)
	d.sendTo(mi, b)
	if env.Msg.Reliable() && len(b) <= d.udpLimit {
		// Also over TCP (a duplicate is harmless): a host whose datagrams
		// do not get through must still learn the roster (PROTOCOL.md §8).
		d.sendReliable(mi, b)
	}
}

func (d *driver) sendReliable(mi *memberInfo, b []byte) {
	select {
	case d.c.reliable <- reliableMsg{to: memberlist.Node{Name: mi.name, Addr: mi.addr, Port: mi.port}, msg: b}:
	default:
		d.c.cfg.Stats.dropped(DropUnsent)
	}
}

func (d *driver) sendTo(mi *memberInfo, b []byte) {
	to := memberlist.Node{Name: mi.name, Addr: mi.addr, Port: mi.port}
	d.c.cfg.Stats.bytes("out", len(b))
	if len(b) <= d.udpLimit {
		if err := d.c.ml.SendBestEffort(&to, b); err != nil {
			d.c.log.Debug("gossip send failed", "to", mi.name, "err", err)
		}
		return
	}
	d.sendReliable(mi, b)
}

func (d *driver) broadcast(s *appState, m *rollout.Message) {
	b := appendMessage(nil, m)
	if len(b) > maxBroadcast {
		d.c.cfg.Stats.dropped(DropUnsent) // push-pull still carries it
	} else {
		d.c.bq.QueueBroadcast(&broadcast{name: broadcastName(m), msg: b})
	}
	if m.Kind == rollout.KindFlag && m.From == d.self && d.c.eager {
		// A pause or resume set here reaches the group in one packet, not
		// after gossip rounds: an operator's stop should stop at once.
		d.fanOut(s, b)
		return
	}
	if m.Kind == rollout.KindRow && m.Row.Host == d.self && d.c.eager {
		if s.hasOwn && !significant(&s.lastOwn, &m.Row) {
			return
		}
		s.lastOwn, s.hasOwn = m.Row, true
		d.fanOut(s, b)
	}
}

// significant reports whether a host's own row changed in a way its peers
// act on (a slot freed, a phase reached, a roster step, a gate's verdict),
// as opposed to progress reports.
func significant(old, r *rollout.Row) bool {
	return old.Phase != r.Phase || old.Revision != r.Revision || old.Attempt != r.Attempt ||
		old.Claim != r.Claim || old.Released != r.Released || old.Installed != r.Installed ||
		old.Epoch != r.Epoch || old.RosterHash != r.RosterHash || old.AccBallot != r.AccBallot || old.Drained != r.Drained ||
		len(r.Gates)+len(old.Gates) > 0 && rollout.VerdictsChanged(old.Gates, r.Gates)
}

// fanOut sends an own row to every alive member of the group at once, so
// that a released slot is known in one packet, not a gossip round.
func (d *driver) fanOut(s *appState, b []byte) {
	if len(b) > d.udpLimit {
		return
	}
	peers := make([]*memberInfo, 0, len(s.told))
	for host, r := range s.told {
		if r == rollout.ReachAlive {
			if mi := d.members[host]; mi != nil && mi.state == memberlist.StateAlive {
				peers = append(peers, mi)
			}
		}
	}
	if len(peers) > eagerMaxGroup {
		return
	}
	for _, mi := range peers {
		d.sendTo(mi, b)
	}
}

// snapshots rebuilds, at most every snapEvery, the Status snapshots and the
// push-pull state that changed.
func (d *driver) snapshots(now time.Duration) {
	if now < d.snapAt {
		return
	}
	built := false
	for _, s := range d.apps {
		// Without a roster the reason can change with time alone (a
		// bootstrap wait passing): it is recomputed at every snapshot.
		if s.dirty || s.node.Roster().Epoch == 0 || s.node.BakeUntil() != s.bake {
			st, paused, rs, vs := s.node.Status(), s.node.Paused(), s.node.RosterState(now), s.node.Roster()
			vs.Members = slices.Clone(vs.Members)
			s.bake = s.node.BakeUntil()
			jobs, gates := s.node.Evaluating(), s.node.Gates()
			s.a.mu.Lock()
			s.a.status, s.a.paused, s.a.roster, s.a.voters, s.a.bake = st, paused, rs, vs, s.bake
			s.a.flag, s.a.jobs, s.a.gates = s.node.Flag(), jobs, gates
			s.a.mu.Unlock()
			s.dirty, built = false, true
		}
	}
	if d.snapDirty {
		var all []rollout.Message
		for _, s := range d.apps {
			all = append(all, s.node.LocalState()...)
		}
		b := encodeState(all)
		d.c.snapshot.Store(&b)
		d.snapDirty, built = false, true
	}
	if built {
		d.snapAt = now + d.snapEvery
	}
}
