package gossip

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBootstrapExpectUnderUDPCut: five fresh hosts with bootstrap_expect 5
// over real memberlist, UDP dropped between {h0,h1} and {h2,h3,h4} from the
// start while TCP passes. Rows cross by push-pull, Paxos messages by
// stream: every host adopts the same first roster of all five, and while it
// waits each says why.
func TestBootstrapExpectUnderUDPCut(t *testing.T) {
	checkGoroutines(t)
	f := newFleet(t)
	f.net.udpOnly = true
	sides := map[string]int{}
	f.net.partition(sides) // empty: filled in as hosts start, so the cut is there from the start
	f.bootstrapExpect = 5
	adjust := func(c *Cluster) {
		c.mlc.PushPullInterval = time.Second // the rows' only way across
	}
	var hs []*host
	for i := range 5 {
		o := hostOpts{name: fmt.Sprintf("h%d", i), transport: true, params: testParams, adjust: adjust}
		if i > 0 {
			o.join = []string{hs[0].addr}
		}
		h := f.startHost(o)
		f.net.mu.Lock()
		if i < 2 {
			sides[h.addr] = 1
		}
		f.net.mu.Unlock()
		hs = append(hs, h)
	}
	// Two hosts of five cannot form it: they say why, and wait.
	f.addApp(hs[0], 5)
	f.addApp(hs[2], 5)
	waitFor(t, "h0 to say why it has no roster", 20*time.Second, func() bool {
		return strings.HasPrefix(hs[0].app.Roster().Why, "no roster: waiting for bootstrap_expect 5 hosts, ")
	})
	for _, h := range []*host{hs[1], hs[3], hs[4]} {
		f.addApp(h, 5)
	}
	waitFor(t, "one roster of all five on every host", 60*time.Second, func() bool {
		first := hs[0].app.Roster()
		for _, h := range hs {
			rs := h.app.Roster()
			if rs.Epoch == 0 || rs.Epoch != first.Epoch || rs.Members != 5 || !rs.Voter {
				return false
			}
		}
		return true
	})
	// Every host's row shows that roster, on every host: rows cross the
	// cut by push-pull alone.
	waitFor(t, "every host to see every row at the same roster", 30*time.Second, func() bool {
		for _, h := range hs {
			if !fullRoster(h.app.Status(), 5) {
				return false
			}
		}
		return true
	})
}
