package gossip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/drover-dev/drover/internal/atomicfile"
	"github.com/drover-dev/drover/reconcile/rollout"
	"github.com/hashicorp/memberlist"
)

// The peers file keeps the addresses of the members this host last knew
// alive, so that a restarted host rejoins them even when it has no seeds
// (it is the seed) or its seeds are down. It is a hint: a missing, corrupt
// or stale file only means joining the seeds alone, as without it.
const (
	peersFileVersion = 1
	// maxSavedPeers bounds the file: enough to find one live member of a
	// fleet that lost most of its hosts, small enough to read at once.
	maxSavedPeers = 64
	// maxPeersFileSize bounds what is read (64 peers take about 20 KiB).
	maxPeersFileSize = 64 << 10
	// peersSaveEvery: membership changes are written at most this often
	// (and once more on a graceful Close).
	peersSaveEvery = 5 * time.Second
	// maxJoinPeers saved peers are tried per join attempt, a random choice
	// each time, with the seeds, all at once.
	maxJoinPeers = 8
)

// savedPeer is one member as the peers file keeps it.
type savedPeer struct {
	Name string `json:"name"`
	Addr string `json:"addr"` // host:port that memberlist advertised
}

func (p savedPeer) String() string { return p.Name + " " + p.Addr }

type peersFile struct {
	Version int         `json:"version"`
	Peers   []savedPeer `json:"peers"`
}

var errNoPeersFile = errors.New("no peers file")

// loadPeers reads the peers file at path: errNoPeersFile (wrapped) when it
// does not exist, another error when it cannot be read or parsed as a
// whole. Entries that are not a valid name and host:port are left out and
// counted in skipped.
func loadPeers(path string) (peers []savedPeer, skipped int, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s", errNoPeersFile, path)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read peers file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPeersFileSize+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read peers file %s: %w", path, err)
	}
	if len(b) > maxPeersFileSize {
		return nil, 0, fmt.Errorf("read peers file %s: larger than %d bytes", path, maxPeersFileSize)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, 0, fmt.Errorf("read peers file %s: empty", path)
	}
	var pf peersFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return nil, 0, fmt.Errorf("read peers file %s: %w", path, err)
	}
	if pf.Version != peersFileVersion {
		return nil, 0, fmt.Errorf("read peers file %s: version %d, want %d", path, pf.Version, peersFileVersion)
	}
	seen := map[string]bool{}
	for _, p := range pf.Peers {
		if !validPeer(p) || seen[p.Name] || len(peers) == maxSavedPeers {
			skipped++
			continue
		}
		seen[p.Name] = true
		peers = append(peers, p)
	}
	return peers, skipped, nil
}

func validPeer(p savedPeer) bool {
	if p.Name == "" || len(p.Name) > rollout.MaxString || strings.ContainsAny(p.Name, "\x00\n") {
		return false
	}
	host, port, err := net.SplitHostPort(p.Addr)
	return err == nil && host != "" && port != "" && port != "0" && len(p.Addr) <= rollout.MaxString
}

// savePeers writes the peers file atomically (temp file, fsync, rename,
// fsync of the directory).
func savePeers(path string, peers []savedPeer) error {
	b, err := json.Marshal(peersFile{Version: peersFileVersion, Peers: peers})
	if err != nil {
		return fmt.Errorf("save peers file: %w", err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o644)
}

// alivePeersLocked is what the peers file should say now: the members
// memberlist reports alive, this host excluded, at most maxSavedPeers (a
// choice by hash of this host's and the peer's names, so that each host
// keeps a different part of a large fleet and the choice does not churn),
// sorted by name.
func (c *Cluster) alivePeersLocked() []savedPeer {
	var out []savedPeer
	for _, m := range c.members {
		if m.state == memberlist.StateAlive && m.name != c.cfg.NodeName && m.addr != nil {
			out = append(out, savedPeer{Name: m.name, Addr: net.JoinHostPort(m.addr.String(), fmt.Sprint(m.port))})
		}
	}
	if len(out) > maxSavedPeers {
		key := func(p savedPeer) uint64 {
			h := fnv.New64a()
			h.Write([]byte(c.cfg.NodeName + "\x00" + p.Name))
			return h.Sum64()
		}
		slices.SortFunc(out, func(a, b savedPeer) int {
			ka, kb := key(a), key(b)
			switch {
			case ka < kb:
				return -1
			case ka > kb:
				return 1
			}
			return strings.Compare(a.Name, b.Name)
		})
		out = out[:maxSavedPeers]
	}
	slices.SortFunc(out, func(a, b savedPeer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// loadSavedPeers reads the peers file at start. A missing one is normal (a
// first start, or an agent of an older drover); an unreadable or corrupt
// one is reported and ignored: the seeds are enough to start.
func (c *Cluster) loadSavedPeers() {
	if c.cfg.PeersFile == "" {
		return
	}
	peers, skipped, err := loadPeers(c.cfg.PeersFile)
	switch {
	case errors.Is(err, errNoPeersFile):
		c.log.Info("gossip: no saved peers yet", "path", c.cfg.PeersFile)
	case err != nil:
		c.log.Warn("gossip: ignoring the saved peers; joining the seeds only", "err", err, "seeds", c.cfg.Join)
	default:
		if skipped > 0 {
			c.log.Warn("gossip: saved peers file has entries that are not a name and host:port; left them out", "path", c.cfg.PeersFile, "skipped", skipped)
		}
		peers = slices.DeleteFunc(peers, func(p savedPeer) bool { return p.Name == c.cfg.NodeName })
		c.log.Info("gossip: loaded the peers this host last knew alive", "path", c.cfg.PeersFile, "peers", peerNames(peers))
	}
	c.peersMu.Lock()
	c.saved = peers
	c.peersMu.Unlock()
}

// peersLoop writes the peers file when membership changed, at most every
// peersEvery.
func (c *Cluster) peersLoop() {
	defer c.wg.Done()
	var last time.Time
	for {
		select {
		case <-c.stop:
			return
		case <-c.peersDirty:
		}
		if wait := c.peersEvery - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-c.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		last = time.Now()
		c.savePeersNow()
	}
}

// savePeersNow writes the members alive now to the peers file if they
// differ from what it holds. With nobody alive but this host the file is
// left as it is: those are the peers to try when it starts alone.
func (c *Cluster) savePeersNow() {
	c.mu.Lock()
	alive := c.alivePeersLocked()
	c.mu.Unlock()
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	if len(alive) == 0 || slices.Equal(alive, c.saved) {
		return
	}
	if err := savePeers(c.cfg.PeersFile, alive); err != nil {
		c.peersFailures++
		if c.peersFailures == 1 || c.peersFailures%20 == 0 {
			c.log.Warn("gossip: cannot save the peers file; a restart will join the seeds only", "path", c.cfg.PeersFile, "attempts", c.peersFailures, "err", err)
		}
		return
	}
	c.peersFailures = 0
	c.saved = alive
}

// savedPeers returns the peers the file holds (or held at start).
func (c *Cluster) savedPeers() []savedPeer {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	return slices.Clone(c.saved)
}

func (c *Cluster) peersChanged() {
	if c.cfg.PeersFile == "" {
		return
	}
	select {
	case c.peersDirty <- struct{}{}:
	default:
	}
}

func peerNames(ps []savedPeer) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
