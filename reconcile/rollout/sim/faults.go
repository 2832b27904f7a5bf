package sim

import (
	"math"
	"slices"
	"time"

	"github.com/drover-dev/drover/reconcile"
	"github.com/drover-dev/drover/reconcile/manifest"
	"github.com/drover-dev/drover/reconcile/rollout"
)

// ---- decisions and the hook runner ----

func (s *Sim) decide(h *host, d rollout.Decision) {
	switch d.Kind {
	case rollout.DecideStart:
		if h.running != "" {
			s.violation("P3: %s started %s while %s runs", h.name, d.Deployment, h.running)
		}
		for _, g := range s.ghosts {
			if g.host == h.id && g.until > s.now {
				s.violation("P3: %s started %s while its interrupted lifecycle still runs", h.name, d.Deployment)
			}
		}
		if s.gates != nil {
			s.checkGateStart(h, d)
		}
		if !d.Slotless && s.op.Paused && h.knew == s.op {
			s.violation("pause: %s started %s while the fleet is paused; it knew the pause %+v", h.name, d.Deployment, s.op)
		}
		s.startHook(h, d)
	case rollout.DecideFence:
		if h.running == d.Deployment {
			s.setFence(h, d.Fence)
		}
	case rollout.DecideAbort:
		if h.running == d.Deployment && h.abortEnd == 0 {
			// TERM now, gone within the grace (KILL at its end).
			h.abortEnd = s.now + s.stopDelay()
			s.trace("%s aborts %s (%s), hook gone at %s", h.name, d.Deployment, d.Reason, h.abortEnd)
			s.scheduleHookEnd(h)
		}
	}
}

// stopDelay is how long a hook takes to go after TERM: at most FenceGrace
// (KILL comes then).
func (s *Sim) stopDelay() time.Duration {
	return time.Duration(s.rng.Int64N(int64(s.timing.FenceGrace()) + 1))
}

func (s *Sim) startHook(h *host, d rollout.Decision) {
	h.running, h.runSlot = d.Deployment, !d.Slotless
	h.runGen++
	h.fence, h.killEnd, h.abortEnd, h.hookEnd = 0, 0, 0, 0
	dur := time.Duration(float64(s.cfg.HookTime) * (0.8 + 0.4*s.rng.Float64()))
	if s.cfg.SlowHooks > 0 && s.rng.Float64() < s.cfg.SlowHooks {
		s.res.Faults["slow-hook"]++
		dur = time.Duration(float64(s.timing.Lease) * (1 + 3*s.rng.Float64()))
	}
	h.natEnd, h.natOK = s.now+dur, s.rng.Float64() >= s.cfg.HookFailRate
	if d.Fence > 0 {
		s.setFence(h, d.Fence)
	}
	s.trace("%s starts %s slot=%v row-slot=%d natural end %s fence %s", h.name, d.Deployment, h.runSlot, h.node.Row().Slot, h.natEnd, h.fence)
	if h.runSlot {
		s.checkP1(h)
	}
	s.scheduleHookEnd(h)
}

// setFence gives the supervisor a new local deadline. Once TERM went out
// the stop goes on whatever the agent says.
func (s *Sim) setFence(h *host, local time.Duration) {
	if h.fence != 0 && s.now >= h.fence {
		return
	}
	h.fence = s.virtual(h, local)
	if s.cfg.NoSupervisorFence {
		return
	}
	h.killEnd = h.fence + s.stopDelay()
	s.scheduleHookEnd(h)
}

func (s *Sim) scheduleHookEnd(h *host) {
	at := h.natEnd
	if h.abortEnd != 0 {
		at = min(at, h.abortEnd)
	}
	if h.killEnd != 0 {
		at = min(at, h.killEnd)
	}
	if at != h.hookEnd {
		h.hookEnd = at
		s.push(event{at: at, kind: evHookEnd, host: h.id, gen: h.runGen, dep: h.running})
	}
}

func (s *Sim) hookEnd(e *event) {
	h := s.hosts[e.host]
	if !h.up || e.gen != h.runGen || h.running != e.dep || e.at != h.hookEnd {
		return
	}
	ok, res := h.natOK, "ok"
	if !ok {
		res = "hook failed"
	}
	switch {
	case h.abortEnd != 0 && e.at == h.abortEnd:
		ok, res = false, "aborted"
	case h.killEnd != 0 && e.at == h.killEnd:
		ok, res = false, "killed at the fence by the supervisor"
		s.res.Faults["fence-kill"]++
		if h.paused {
			s.res.Faults["fence-kill-paused"]++
		}
	}
	h.running = ""
	h.runGen++
	s.trace("%s hook %s ends: %s (agent paused %v)", h.name, e.dep, res, h.paused)
	if h.paused {
		s.res.Faults["hook-end-while-paused"]++
		h.reports = append(h.reports, report{dep: e.dep, ok: ok, result: res})
		return
	}
	s.call(h, reconcile.Call{Kind: reconcile.CallFinished, Deployment: e.dep, OK: ok, Result: res})
}

// ---- faults ----

func (s *Sim) scheduleFaults() {
	n := s.cfg.Hosts
	pol := rollout.Resolve(s.cfg.Deployment, n)
	w := pol.Window
	if w == 0 {
		w = n
	}
	est := time.Duration(float64(s.cfg.HookTime+2*time.Second) * math.Ceil(float64(n)/float64(w)))
	if s.cfg.Deployment.Strategy == manifest.Canary {
		est += s.cfg.Deployment.Bake + s.cfg.HookTime
	}
	at := func() time.Duration { return 5*time.Second + time.Duration(s.rng.Int64N(int64(est))) }
	if s.cfg.Crashes {
		for i, k := 0, max(2, n/25); i < k; i++ {
			s.push(event{at: at(), kind: evCrash, host: -1})
		}
	}
	if s.cfg.Partitions {
		for i, k := 0, 1+s.rng.IntN(2); i < k; i++ {
			s.push(event{at: at(), kind: evPartition, host: i})
		}
	}
	if s.cfg.Permanent && (s.cfg.Partitions || !s.cfg.GrayCuts) {
		s.push(event{at: at(), kind: evPartition, host: -1})
	}
	if s.cfg.GrayCuts {
		for i, k := 0, 1+s.rng.IntN(3); i < k; i++ {
			s.push(event{at: at(), kind: evGrayCut, host: i})
		}
		if s.cfg.Permanent {
			s.push(event{at: at(), kind: evGrayCut, host: -1})
		}
	}
	if s.cfg.Pauses {
		for i, k := 0, max(3, n/20); i < k; i++ {
			s.push(event{at: at(), kind: evPause, host: -1})
		}
	}
	if s.cfg.FleetPauses {
		// Paused early in the rollout (some hosts done, some running, most
		// waiting); the whole fleet restarts a few seconds later, some hosts
		// crash on their own; the resume may find hosts still down.
		tp := 3*time.Second + time.Duration(s.rng.Int64N(int64(est/2)+1))
		s.push(event{at: tp, kind: evFleetPause})
		s.push(event{at: tp + 3*time.Second + time.Duration(s.rng.Int64N(int64(10*time.Second))), kind: evFleetRestart})
		for i, k := 0, max(2, n/25); i < k; i++ {
			s.push(event{at: tp + time.Duration(s.rng.Int64N(int64(40*time.Second))), kind: evCrash, host: -1})
		}
		s.push(event{at: tp + 15*time.Second + time.Duration(s.rng.Int64N(int64(45*time.Second))), kind: evFleetResume})
	}
	if s.cfg.DriftExtremes {
		for _, h := range s.hosts {
			if h.drift > 0 {
				s.res.Faults["drift-fast-host"]++
			} else {
				s.res.Faults["drift-slow-host"]++
			}
		}
	}
	if s.cfg.Joins {
		for i, k := 0, max(1, n/30); i < k; i++ {
			s.push(event{at: at(), kind: evJoin, host: -1})
		}
		for i, k := 0, max(1, n/50); i < k; i++ {
			s.push(event{at: at(), kind: evLeave, host: -1})
		}
	}
}

// membership tells observers, after memberlist's detection delays, what
// became of targets: dead one probe interval plus the suspicion timeout
// after they became unreachable, alive again about two probe intervals
// after they came back. The news is dropped on arrival if it is stale.
func (s *Sim) membership(targets, observers []int, down bool) {
	if len(targets) == 0 || len(observers) == 0 {
		return
	}
	if down {
		s.push(event{at: s.now + s.cfg.Params.ProbeInterval + s.tsusp, kind: evMembership, obs: observers, tgts: targets, r: rollout.ReachDead})
		return
	}
	s.push(event{at: s.now + s.jitter(2*s.cfg.Params.ProbeInterval), kind: evMembership, obs: observers, tgts: targets, r: rollout.ReachAlive})
}

func (s *Sim) deliverMembership(e *event) {
	for _, o := range e.obs {
		ob := s.hosts[o]
		if !ob.up || ob.paused {
			continue // a paused agent catches up on resume
		}
		var changed []string
		for _, t := range e.tgts {
			tg := s.hosts[t]
			if tg == ob {
				continue
			}
			if e.r != rollout.ReachLeft {
				if !tg.joined || s.seesAlive(ob, tg) != (e.r == rollout.ReachAlive) {
					continue // stale news
				}
			}
			if ob.toldOf(t) == e.r {
				continue
			}
			ob.setTold(t, e.r)
			changed = append(changed, tg.name)
		}
		if len(changed) > 0 {
			s.run(ob, &reconcile.Input{Members: changed})
		}
	}
}

func (s *Sim) others(h *host) []int {
	var out []int
	for _, o := range s.hosts {
		if o != h && o.joined {
			out = append(out, o.id)
		}
	}
	return out
}

func (s *Sim) crash(h *host) {
	s.res.Faults["crash"]++
	if h.running != "" && h.runSlot {
		// The lifecycle keeps running until the fence (A3: the supervisor,
		// or the dead-man watchdog earlier) or the restart.
		until := s.now
		switch {
		case h.killEnd != 0:
			until = max(until, h.killEnd)
		case h.fence > s.now:
			until = h.fence + s.stopDelay()
		}
		if h.abortEnd != 0 {
			until = min(until, max(h.abortEnd, s.now))
		}
		s.ghosts = append(s.ghosts, ghost{host: h.id, until: until})
	}
	s.trace("%s crashes (hook %q, paused %v)", h.name, h.running, h.paused)
	h.running = ""
	h.runGen++
	h.up = false
	h.gen++
	h.paused, h.held, h.heldPackets, h.reports, h.wantDesired = false, nil, 0, nil, false
	h.queue, h.qidx, h.rowq = nil, map[bcKey]*bcItem{}, nil
	h.streamQ, h.streamFree = nil, 0
	s.membership([]int{h.id}, s.others(h), true)
	// restart after a short or a long outage (longer than the lease)
	d := time.Second + time.Duration(s.rng.Int64N(int64(3*s.timing.Lease)))
	s.push(event{at: s.now + d, kind: evRestart, host: h.id})
}

func (s *Sim) joinedShuffled() []*host {
	var live []*host
	for _, h := range s.hosts {
		if h.joined {
			live = append(live, h)
		}
	}
	s.rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	return live
}

func (s *Sim) partition(idx int) {
	live := s.joinedShuffled()
	var cut int
	kind := "partition-minority"
	if s.rng.IntN(3) == 0 {
		cut, kind = len(live)/2, "partition-symmetric"
	} else {
		cut = max(1, len(live)*(10+s.rng.IntN(35))/100)
	}
	s.res.Faults[kind]++
	s.trace("%s: %d of %d hosts cut off", kind, cut, len(live))
	s.partitioned = true
	s.retopo(func() {
		for i, h := range live {
			h.side = 0
			if i < cut {
				h.side = 1
			}
		}
	})
	if idx >= 0 {
		d := 5*time.Second + time.Duration(s.rng.Int64N(int64(60*time.Second)))
		s.push(event{at: s.now + d, kind: evHeal})
	} else {
		s.permanent = true
		s.res.Faults["partition-permanent"]++
	}
}

func (s *Sim) heal() {
	if s.permanent {
		return
	}
	s.trace("partition heals")
	s.partitioned = false
	s.retopo(func() {
		for _, h := range s.hosts {
			h.side = 0
		}
	})
}

// grayCut starts a partial cut of a random kind (the package comment says
// what membership makes of each); idx < 0 never heals.
func (s *Sim) grayCut(idx int) {
	live := s.joinedShuffled()
	if len(live) < 4 {
		return
	}
	set := func(hs ...*host) []bool {
		b := make([]bool, len(s.hosts))
		for _, h := range hs {
			b[h.id] = true
		}
		return b
	}
	split := max(1, len(live)*(10+s.rng.IntN(41))/100)
	var cs []*cut
	var kind string
	switch s.rng.IntN(5) {
	case 0:
		kind = "gray-udp"
		cs = []*cut{{udp: true, a: set(live[:split]...), b: set(live[split:]...)}}
	case 1:
		kind = "gray-tcp"
		cs = []*cut{{tcp: true, a: set(live[:split]...), b: set(live[split:]...)}}
	case 2:
		kind = "gray-oneway-pair"
		cs = []*cut{{oneWay: true, a: set(live[0]), b: set(live[1])}}
	case 3:
		kind = "gray-oneway-group"
		cs = []*cut{{oneWay: true, a: set(live[:split]...), b: set(live[split:]...)}}
	default:
		kind = "gray-pairwise"
		for k := 1 + s.rng.IntN(3); k > 0; k-- {
			x := live[k-1]
			var peers []*host
			for _, o := range live {
				if o != x && s.rng.IntN(100) < 20+s.rng.IntN(41) {
					peers = append(peers, o)
				}
			}
			cs = append(cs, &cut{udp: true, tcp: true, a: set(x), b: set(peers...)})
		}
	}
	s.grayGroups++
	g := s.grayGroups
	for _, c := range cs {
		c.group = g
	}
	s.res.Faults[kind]++
	s.trace("%s #%d starts (%d hosts on one side)", kind, g, split)
	s.retopo(func() { s.cuts = append(s.cuts, cs...) })
	if idx < 0 {
		s.res.Faults["gray-permanent"]++
		return
	}
	d := 5*time.Second + time.Duration(s.rng.Int64N(int64(6*s.timing.Lease)))
	s.push(event{at: s.now + d, kind: evGrayHeal, gen: uint64(g)})
}

func (s *Sim) grayHeal(g int) {
	s.trace("gray cut #%d heals", g)
	s.retopo(func() { s.cuts = slices.DeleteFunc(s.cuts, func(c *cut) bool { return c.group == g }) })
}

// pause stops an agent, most often a slot holder's, for 0.05 to 5 leases
// (three in four pauses longer than half a lease).
func (s *Sim) pause() {
	var all, holders []*host
	for _, h := range s.hosts {
		if h.up && h.joined && !h.paused {
			all = append(all, h)
			if h.running != "" && h.runSlot {
				holders = append(holders, h)
			}
		}
	}
	if len(all) == 0 {
		return
	}
	h := all[s.rng.IntN(len(all))]
	if len(holders) > 0 && s.rng.IntN(4) != 0 {
		h = holders[s.rng.IntN(len(holders))]
	}
	l := float64(s.timing.Lease)
	var d time.Duration
	if s.rng.IntN(4) == 0 {
		d = time.Duration(l * (0.05 + 0.45*s.rng.Float64()))
	} else {
		d = time.Duration(l * (0.5 + 4.5*s.rng.Float64()))
	}
	s.res.Faults["pause"]++
	if d > s.timing.Lease {
		s.res.Faults["pause-long"]++
	}
	if h.running != "" && h.runSlot {
		s.res.Faults["pause-holder"]++
	}
	h.heldCap, h.heldPackets, h.held = 0, 0, nil
	if s.rng.IntN(2) == 0 {
		h.heldCap = 8 + s.rng.IntN(249)
		s.res.Faults["pause-buffered"]++
	} else {
		s.res.Faults["pause-dropping"]++
	}
	s.trace("%s agent paused for %s (hook %q, fence %s, keeps %d packets)", h.name, d, h.running, h.fence, h.heldCap)
	h.paused = true
	s.push(event{at: s.now + d, kind: evResume, host: h.id, gen: h.gen})
	s.membership([]int{h.id}, s.others(h), true)
}

// hold is an arrival at a paused agent: kept for the resume while the
// socket buffer has room, else dropped.
func (s *Sim) hold(h *host, e *event) {
	if h.heldPackets >= h.heldCap {
		if h.heldCap > 0 {
			s.res.Faults["pause-overflow-packets"]++
		}
		return
	}
	h.heldPackets++
	if e.msg != nil {
		h.held = append(h.held, e.msg)
	}
	h.held = append(h.held, e.msgs...)
}

// resume restarts a paused agent: it ticks first (a lease that lapsed is
// noticed before anything else), then takes its backlog and learns how its
// hook ended, in a seeded order; then it catches up on membership.
func (s *Sim) resume(h *host) {
	s.trace("%s agent resumes (%d messages kept, %d hook reports)", h.name, len(h.held), len(h.reports))
	h.paused = false
	s.run(h, nil)
	held, reports := h.held, h.reports
	h.held, h.heldPackets, h.reports = nil, 0, nil
	s.rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	backlog := func() {
		if len(held) > 0 {
			s.run(h, &reconcile.Input{Msgs: held})
		}
	}
	tell := func() {
		for _, r := range reports {
			s.call(h, reconcile.Call{Kind: reconcile.CallFinished, Deployment: r.dep, OK: r.ok, Result: r.result})
		}
	}
	if s.rng.IntN(2) == 0 {
		backlog()
		tell()
	} else {
		tell()
		backlog()
	}
	if h.wantDesired {
		h.wantDesired = false
		s.call(h, reconcile.Call{Kind: reconcile.CallDesired, Desired: s.desired})
	}
	s.armGossip(h)
	s.membership([]int{h.id}, s.others(h), false)
	// Its own memberlist catches up with what changed while it was stopped.
	var up, down, left []int
	for _, o := range s.hosts {
		if o == h {
			continue
		}
		alive, told := s.seesAlive(h, o), h.toldOf(o.id)
		switch {
		case !o.joined && told == rollout.ReachAlive:
			left = append(left, o.id) // it left while this agent was stopped
		case alive && told != rollout.ReachAlive:
			up = append(up, o.id)
		case !alive && told == rollout.ReachAlive:
			down = append(down, o.id)
		}
	}
	s.membership(up, []int{h.id}, false)
	s.membership(down, []int{h.id}, true)
	if len(left) > 0 {
		s.push(event{at: s.now + s.jitter(2*s.cfg.Params.GossipInterval), kind: evMembership, obs: []int{h.id}, tgts: left, r: rollout.ReachLeft})
	}
}

// ---- fleet pauses (drover pause / resume) ----

// flagNewer is rollout's last-writer-wins order on (Clock, Node).
func flagNewer(f, g rollout.Flag) bool {
	if f.Clock != g.Clock {
		return f.Clock > g.Clock
	}
	return f.Node > g.Node
}

// operatorSets is `drover pause` (or resume) at a random host whose agent
// runs and whose status shows the operator's last action (as an operator
// who looks at `drover status` before typing); if none does, it is tried
// again a second later. An action at a host that has not heard of the
// last one is concurrent with it in the flag's order, and the greater node
// name wins the tie (PROTOCOL.md §2, Flags): not what is tested here.
func (s *Sim) operatorSets(paused bool) {
	var cands []*host
	for _, h := range s.hosts {
		if h.up && h.joined && !h.paused && h.node.Flag() == s.op {
			cands = append(cands, h)
		}
	}
	kind := evFleetResume
	if paused {
		kind = evFleetPause
	}
	if len(cands) == 0 {
		s.push(event{at: s.now + time.Second, kind: kind, host: -1})
		return
	}
	h := cands[s.rng.IntN(len(cands))]
	s.runThen(h, &reconcile.Input{Calls: []reconcile.Call{{Kind: reconcile.CallPaused, Paused: paused}}}, func() {
		s.op = h.node.Flag()
		if paused {
			s.res.Faults["fleet-pause"]++
		} else {
			s.res.Faults["fleet-resume"]++
		}
		s.trace("operator: drover %s at %s (flag %+v)", map[bool]string{true: "pause", false: "resume"}[paused], h.name, s.op)
	})
}

// fleetRestart crashes every running agent at once (a power cut, a package
// upgrade on every host); each comes back after its own outage.
func (s *Sim) fleetRestart() {
	s.res.Faults["fleet-restart"]++
	s.trace("the whole fleet restarts")
	for _, h := range s.hosts {
		if h.up && h.joined {
			s.crash(h)
		}
	}
}

// checkRestoredFlag: a restarted Node holds the newest flag it held before
// (it stored it before sending or acting on it).
func (s *Sim) checkRestoredFlag(h *host) {
	f := h.node.Flag()
	if flagNewer(h.knew, f) {
		s.violation("pause: %s restarted with the flag %+v; before its crash it held %+v", h.name, f, h.knew)
	}
	if f.Paused {
		s.res.Faults["restart-paused"]++
		if s.op.Clock > 0 && !s.op.Paused {
			s.res.Faults["restart-missed-resume"]++ // it must take the resume from its peers
		}
	}
}

// crashSome crashes a random host, most likely one that runs a hook (or,
// with gates, half the time one that evaluates a gate).
func (s *Sim) crashSome() {
	var cands []*host
	for _, h := range s.hosts {
		if h.up && h.joined && (h.running != "" || s.rng.IntN(4) == 0) {
			cands = append(cands, h)
		}
	}
	if s.gates != nil && s.rng.IntN(2) == 0 {
		// half the crashes hit a host that evaluates a gate (P4)
		var evals []*host
		for _, h := range s.hosts {
			if h.up && h.joined && len(h.node.Evaluating()) > 0 {
				evals = append(evals, h)
			}
		}
		if len(evals) > 0 {
			cands = evals
			s.res.Faults["crash-evaluator"]++
		}
	}
	if len(cands) > 0 {
		s.crash(cands[s.rng.IntN(len(cands))])
	}
}

// restart brings a crashed agent back from its stored state.
func (s *Sim) restart(h *host) {
	if h.up || !h.joined {
		return
	}
	s.res.Faults["restart"]++
	s.trace("%s restarts", h.name)
	// the restarted agent kills what is left of the interrupted lifecycle
	s.ghosts = slices.DeleteFunc(s.ghosts, func(g ghost) bool { return g.host == h.id })
	s.startHost(h, false)
	if h.node.Row().Revision != s.desired.Revision {
		s.push(event{at: s.now + time.Second, kind: evDesired, host: h.id})
	}
	s.membership([]int{h.id}, s.others(h), false)
}

// join adds a fresh host to the cluster.
func (s *Sim) join() {
	s.res.Faults["join"]++
	var h *host
	s.retopo(func() {
		h = s.addHost(hostName(len(s.hosts)), rollout.Persisted{})
		if s.permanent {
			h.side = s.rng.IntN(2)
		}
	})
	s.startHost(h, false)
	s.push(event{at: s.now + time.Second, kind: evDesired, host: h.id})
	s.membership([]int{h.id}, s.others(h), false)
}

// leave makes a settled host leave the cluster gracefully.
func (s *Sim) leave() {
	var cands []*host
	for _, h := range s.hosts {
		if h.up && h.joined && !h.paused && h.running == "" && h.node.Settled() {
			cands = append(cands, h)
		}
	}
	if len(cands) == 0 {
		return
	}
	h := cands[s.rng.IntN(len(cands))]
	s.res.Faults["leave"]++
	obs := s.others(h)
	s.departed++
	s.retopo(func() {
		h.up, h.joined = false, false
		h.gen++
	})
	s.push(event{at: s.now + s.jitter(2*s.cfg.Params.GossipInterval), kind: evMembership, obs: obs, tgts: []int{h.id}, r: rollout.ReachLeft})
}
