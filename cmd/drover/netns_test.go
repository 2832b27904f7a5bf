package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// netLab gives each host of a test fleet its own network namespace, the
// way DESIGN.md §13 asks partitions to be made: every host namespace has an
// eth0 (10.213.0.N/24, addresses that exist only inside these namespaces)
// whose veth peer sits in a hub namespace, on bridge br0. A partition moves
// one side's veth peers to a second bridge, br1: the sides are cut from each
// other at layer 2 (packets are dropped, connections time out) while hosts
// on one side still talk among themselves. Healing moves them back. Nothing
// is touched in the test's own namespace but the veth pairs, which live
// there only for the instant before they are moved.
type netLab struct {
	t     *testing.T
	hub   string   // the hub namespace
	hosts []string // host i's namespace
	peers []string // host i's veth peer, in the hub
	addrs []string // host i's address
}

// needNetns skips unless this process can make network namespaces (root
// and iproute2's ip); CI runs as root with iproute2 installed, so it runs.
func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2's ip (apt-get install iproute2)")
	}
}

func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	needNetns(t)
	// Names are per test process, so parallel test binaries never collide;
	// interface names must stay within 15 bytes.
	id := os.Getpid() % 100000
	l := &netLab{t: t, hub: fmt.Sprintf("drv%d-hub", id)}
	for i := 0; i < n; i++ {
		l.hosts = append(l.hosts, fmt.Sprintf("drv%d-h%d", id, i+1))
		l.peers = append(l.peers, fmt.Sprintf("dv%dh%d", id, i+1))
		l.addrs = append(l.addrs, fmt.Sprintf("10.213.0.%d", i+1))
	}
	l.cleanup() // leftovers of a killed run with the same pid
	t.Cleanup(l.cleanup)
	l.ip("netns", "add", l.hub)
	l.ip("-n", l.hub, "link", "set", "lo", "up")
	for _, br := range []string{"br0", "br1"} {
		l.ip("-n", l.hub, "link", "add", br, "type", "bridge")
		l.ip("-n", l.hub, "link", "set", br, "up")
	}
	for i := range l.hosts {
		ns, peer, tmp := l.hosts[i], l.peers[i], fmt.Sprintf("dp%dh%d", id, i+1)
		l.ip("netns", "add", ns)
		l.ip("link", "add", peer, "type", "veth", "peer", "name", tmp)
		l.ip("link", "set", tmp, "netns", ns)
		l.ip("-n", ns, "link", "set", tmp, "name", "eth0")
		l.ip("-n", ns, "addr", "add", l.addrs[i]+"/24", "dev", "eth0")
		l.ip("-n", ns, "link", "set", "eth0", "up")
		l.ip("-n", ns, "link", "set", "lo", "up")
		l.ip("link", "set", peer, "netns", l.hub)
		l.ip("-n", l.hub, "link", "set", peer, "master", "br0")
		l.ip("-n", l.hub, "link", "set", peer, "up")
	}
	return l
}

func (l *netLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// cleanup deletes the namespaces; the veth pairs go with them.
func (l *netLab) cleanup() {
	for _, ns := range append([]string{l.hub}, l.hosts...) {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// partition cuts the hosts in side from the others.
func (l *netLab) partition(side map[int]bool) {
	l.t.Helper()
	for i, peer := range l.peers {
		br := "br0"
		if side[i] {
			br = "br1"
		}
		l.ip("-n", l.hub, "link", "set", peer, "master", br)
	}
}

// heal puts every host back on one bridge.
func (l *netLab) heal() { l.partition(nil) }

// command runs name with args inside host i's namespace. `ip netns exec`
// execs the program (it does not stay as a parent), so the process is the
// program itself and a SIGKILL reaches it.
func (l *netLab) command(i int, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.hosts[i], name}, args...)...)
}

// needNft skips unless nftables' nft is installed; CI installs it.
func needNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("gray cuts need nftables' nft (apt-get install nftables)")
	}
}

// cutRule drops the IPv4 packets of proto ("udp", "tcp", or "" for every
// protocol) that the hosts in from send to the hosts in to. Only that
// direction: a one-way cut is one rule, a two-way cut two.
type cutRule struct {
	from, to []int
	proto    string
}

// cutTable is the nftables table of the hub's bridge that holds the cut.
const cutTable = "drovercut"

// cut replaces the lab's cut with rules, in one nftables transaction. The
// rules sit in the hub's bridge (family bridge, forward hook): a firewall
// between the hosts that drops silently, as a misconfigured one in the
// path does; the hosts' own stacks see no error, only silence.
func (l *netLab) cut(rules ...cutRule) {
	l.t.Helper()
	var b strings.Builder
	// Declaring the table first makes the delete valid when it does not
	// exist yet; the transaction then replaces it whole.
	fmt.Fprintf(&b, "table bridge %s\ndelete table bridge %s\n", cutTable, cutTable)
	fmt.Fprintf(&b, "table bridge %s {\n  chain forward {\n    type filter hook forward priority 0; policy accept;\n", cutTable)
	set := func(is []int) string {
		var as []string
		for _, i := range is {
			as = append(as, l.addrs[i])
		}
		return "{ " + strings.Join(as, ", ") + " }"
	}
	for _, r := range rules {
		proto := ""
		if r.proto != "" {
			proto = " meta l4proto " + r.proto
		}
		fmt.Fprintf(&b, "    ip saddr %s ip daddr %s%s drop\n", set(r.from), set(r.to), proto)
	}
	b.WriteString("  }\n}\n")
	cmd := exec.Command("ip", "netns", "exec", l.hub, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("nft -f in %s: %v: %s\n%s", l.hub, err, out, b.String())
	}
}

// uncut removes the cut: every packet passes again.
func (l *netLab) uncut() {
	l.t.Helper()
	l.cut()
}
