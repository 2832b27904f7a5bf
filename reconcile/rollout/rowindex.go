package rollout

import "hash/maphash"

// rowIndex holds, for every peer whose row the node keeps, that row's Seq and
// Released and the peer in one flat open-addressing table. Gossip delivers every row many
// times; refusing a stale copy (and checking a claim against the claimant's
// released claims) then costs one probe into a flat array instead of a walk
// through a map and the peer's record. It mirrors peers[h].row exactly.
type rowIndex struct {
	seed  maphash.Seed
	slots []rowSlot // len is a power of two, at most half full
	used  int
}

type rowSlot struct {
	host     string // "" = empty
	seq      uint64
	released uint64
	peer     *peer
}

func newRowIndex() rowIndex {
	return rowIndex{seed: maphash.MakeSeed(), slots: make([]rowSlot, 16)}
}

// get returns the entry of host, or nil when its row is not held.
func (x *rowIndex) get(host string) *rowSlot {
	mask := uint64(len(x.slots) - 1)
	for i := maphash.String(x.seed, host) & mask; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.host == host {
			return s
		}
		if s.host == "" {
			return nil
		}
	}
}

// set records p's row.
func (x *rowIndex) set(p *peer) {
	host, seq, released := p.host, p.row.Seq, p.row.Released
	if s := x.get(host); s != nil {
		s.seq, s.released = seq, released
		return
	}
	if 2*(x.used+1) > len(x.slots) {
		old := x.slots
		x.slots = make([]rowSlot, 2*len(old))
		x.used = 0
		for _, s := range old {
			if s.host != "" {
				x.insert(s)
			}
		}
	}
	x.insert(rowSlot{host: host, seq: seq, released: released, peer: p})
}

func (x *rowIndex) insert(e rowSlot) {
	mask := uint64(len(x.slots) - 1)
	i := maphash.String(x.seed, e.host) & mask
	for x.slots[i].host != "" {
		i = (i + 1) & mask
	}
	x.slots[i] = e
	x.used++
}
