package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drover-dev/drover/internal/testenv/syncbuf"

	"github.com/hashicorp/memberlist"
)

func TestPeersFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "peers.json")
	want := []savedPeer{{Name: "h2", Addr: "10.0.0.2:7946"}, {Name: "h3", Addr: "[fd00::3]:7946"}}
	if err := savePeers(path, want); err != nil {
		t.Fatal(err)
	}
	got, skipped, err := loadPeers(path)
	if err != nil || skipped != 0 || !slices.Equal(got, want) {
		t.Fatalf("load: %v skipped %d err %v, want %v", got, skipped, err, want)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Errorf("the save left %d files in the directory, want the peers file alone", len(ents))
	}
}

// TestPeersFileBad: whatever is wrong with the file, loading says so and
// gives no peers (the caller warns and joins the seeds); bad entries of a
// good file are left out and counted.
func TestPeersFileBad(t *testing.T) {
	good := `{"version":1,"peers":[{"name":"h2","addr":"10.0.0.2:7946"},{"name":"h3","addr":"10.0.0.3:7946"}]}`
	var many strings.Builder
	many.WriteString(`{"version":1,"peers":[`)
	for i := range maxSavedPeers + 5 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `{"name":"h%d","addr":"10.0.1.%d:7946"}`, i, i%250)
	}
	many.WriteString("]}")
	tests := []struct {
		name    string
		content *string // nil: no file
		want    string  // error substring; "" for no error
		peers   int
		skipped int
	}{
		{name: "missing", want: "no peers file"},
		{name: "empty", content: ptr(""), want: "empty"},
		{name: "blank", content: ptr(" \n\t\n"), want: "empty"},
		{name: "truncated", content: ptr(good[:len(good)/2]), want: "unexpected end of JSON"},
		{name: "truncated at a value", content: ptr(good[:strings.Index(good, "h3")]), want: "unexpected end of JSON"},
		{name: "garbage", content: ptr("\x00\x01\x02binary"), want: "invalid character"},
		{name: "not an object", content: ptr(`["10.0.0.2:7946"]`), want: "cannot unmarshal"},
		{name: "no version", content: ptr(`{"peers":[{"name":"h2","addr":"10.0.0.2:7946"}]}`), want: "version 0"},
		{name: "future version", content: ptr(`{"version":2,"peers":[]}`), want: "version 2"},
		{name: "too large", content: ptr(`{"version":1,"peers":[],"pad":"` + strings.Repeat("x", maxPeersFileSize) + `"}`), want: "larger than"},
		{name: "good", content: &good, peers: 2},
		{name: "bad entries", content: ptr(`{"version":1,"peers":[{"name":"h2","addr":"10.0.0.2:7946"},{"name":"","addr":"10.0.0.9:7946"},{"name":"h4","addr":"no-port"},{"name":"h5","addr":"10.0.0.5:0"},{"name":"h2","addr":"10.0.0.7:7946"}]}`), peers: 1, skipped: 4},
		{name: "over the bound", content: ptr(many.String()), peers: maxSavedPeers, skipped: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "peers.json")
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			peers, skipped, err := loadPeers(path)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("load: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("load: %v, want an error about %q", err, tt.want)
			case tt.want != "" && len(peers) > 0:
				t.Fatalf("load failed (%v) but gave peers %v", err, peers)
			}
			if len(peers) != tt.peers || skipped != tt.skipped {
				t.Errorf("load: %d peers, %d skipped; want %d, %d", len(peers), skipped, tt.peers, tt.skipped)
			}
			if tt.content == nil && !errors.Is(err, errNoPeersFile) {
				t.Errorf("missing file: %v, want errNoPeersFile", err)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// member starts a bare Cluster (no applications) on 127.0.0.1.
func member(t *testing.T, name, bind string, join []string, peersFile string, logs *syncbuf.Buffer) *Cluster {
	t.Helper()
	var log *slog.Logger = testLogger(t).With("node", name)
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
	}
	c, err := New(Config{NodeName: name, Bind: bind, Join: join, Keys: [][]byte{testKey}, Groups: []string{testGroup},
		Params: testParams, Logger: log, PeersFile: peersFile})
	if err != nil {
		t.Fatal(err)
	}
	c.peersEvery = 100 * time.Millisecond
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// goneFor is how long c has seen host dead or left (0: it has not).
func goneFor(c *Cluster, host string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[host]
	if m == nil || m.state == memberlist.StateAlive || m.state == memberlist.StateSuspect {
		return 0
	}
	return time.Since(m.since)
}

func savedNames(t *testing.T, path string) []string {
	peers, _, err := loadPeers(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range peers {
		out = append(out, p.Name)
	}
	return out
}

// TestRestartedSeedRejoinsItsPeers: a seed (no join list) that restarts —
// gracefully, or killed — sees the others alive again within one rejoin
// interval, through the peers it saved; on a new port, so that nothing but
// its own join can bring them together (the others would reconnect to its
// old address).
func TestRestartedSeedRejoinsItsPeers(t *testing.T) {
	for _, how := range []string{"close", "crash"} {
		t.Run(how, func(t *testing.T) {
			checkGoroutines(t)
			dir := t.TempDir()
			peersFile := filepath.Join(dir, "gossip-peers.json")
			seed := member(t, "seed", "127.0.0.1:0", nil, peersFile, nil)
			a := member(t, "a", "127.0.0.1:0", []string{seed.LocalAddr()}, "", nil)
			b := member(t, "b", "127.0.0.1:0", []string{seed.LocalAddr()}, "", nil)
			waitFor(t, "the seed to save both peers", 30*time.Second, func() bool {
				return slices.Equal(savedNames(t, peersFile), []string{"a", "b"})
			})
			if how == "close" {
				if err := seed.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				seed.crash()
			}
			// memberlist lets a dead or left name come back from another
			// address only after DeadNodeReclaimTime (a probe interval).
			waitFor(t, "the others to see the seed gone for a probe interval", 30*time.Second, func() bool {
				return goneFor(a, "seed") > testParams.ProbeInterval && goneFor(b, "seed") > testParams.ProbeInterval
			})
			logs := &syncbuf.Buffer{}
			started := time.Now()
			again := member(t, "seed", "127.0.0.1:0", nil, peersFile, logs)
			bound := RejoinInterval(testParams)
			waitFor(t, "the restarted seed to see both peers alive", bound, func() bool { return aliveCount(again) == 3 })
			t.Logf("%s: the restarted seed saw both peers alive %s after its start (bound %s)", how, time.Since(started).Round(time.Millisecond), bound)
			waitFor(t, "the peers to see the seed alive", 30*time.Second, func() bool { return aliveCount(a) == 3 && aliveCount(b) == 3 })
			for _, want := range []string{"loaded the peers this host last knew alive", "a 127.0.0.1:", "b 127.0.0.1:", "gossip joined"} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the restarted seed's log does not say %q:\n%s", want, logs)
				}
			}
		})
	}
}

// TestAloneSeedRetriesSavedPeers: the seed starts first, after a power cut;
// its saved peer is not up yet, and has no seeds of its own. The seed's
// log says that nobody answered; it retries, and once the peer is up they
// are together within one rejoin interval.
func TestAloneSeedRetriesSavedPeers(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerAddr := l.Addr().String()
	l.Close()
	peersFile := filepath.Join(dir, "gossip-peers.json")
	if err := savePeers(peersFile, []savedPeer{{Name: "later", Addr: peerAddr}}); err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	seed := member(t, "seed", "127.0.0.1:0", nil, peersFile, logs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := seed.WaitJoined(ctx); err != nil {
		t.Fatalf("a seed waits to be joined: %v", err)
	}
	waitFor(t, "the seed's log to say nobody answered", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "none of the seeds or saved peers answered") && strings.Contains(logs.String(), "later "+peerAddr)
	})
	c, err := New(Config{NodeName: "later", Bind: peerAddr, Keys: [][]byte{testKey}, Groups: []string{testGroup}, Params: testParams, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, "the seed to join the peer that came up", RejoinInterval(testParams), func() bool { return aliveCount(seed) == 2 && aliveCount(c) == 2 })
}

// TestCorruptPeersFileStartsWithSeeds: a corrupt peers file is reported
// and ignored; the host joins its seeds and writes a good file again.
func TestCorruptPeersFileStartsWithSeeds(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	peersFile := filepath.Join(dir, "gossip-peers.json")
	if err := os.WriteFile(peersFile, []byte(`{"version":1,"peers":[{"name":"x","ad`), 0o644); err != nil {
		t.Fatal(err)
	}
	seed := member(t, "seed", "127.0.0.1:0", nil, "", nil)
	logs := &syncbuf.Buffer{}
	h := member(t, "h", "127.0.0.1:0", []string{seed.LocalAddr()}, peersFile, logs)
	waitFor(t, "the host to join its seed", 30*time.Second, func() bool { return aliveCount(h) == 2 })
	if !strings.Contains(logs.String(), "ignoring the saved peers; joining the seeds only") {
		t.Errorf("no warning about the corrupt peers file:\n%s", logs)
	}
	waitFor(t, "a good peers file again", 30*time.Second, func() bool { return slices.Equal(savedNames(t, peersFile), []string{"seed"}) })
}
