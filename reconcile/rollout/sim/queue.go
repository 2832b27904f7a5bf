package sim

import (
	"time"

	"github.com/drover-dev/drover/reconcile/rollout"
)

// evRef is a queue entry: the ordering key is kept inline so that sifting
// never dereferences an event.
type evRef struct {
	at  time.Duration
	seq uint64
	e   *event
}

func (a evRef) before(b evRef) bool {
	return a.at < b.at || a.at == b.at && a.seq < b.seq
}

// evQueue is a binary min-heap of events by (at, seq).
type evQueue []evRef

func (q *evQueue) push(r evRef) {
	h := append(*q, r)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	*q = h
}

func (q *evQueue) pop() *event {
	h := *q
	top := h[0].e
	last := len(h) - 1
	h[0] = h[last]
	h[last] = evRef{}
	h = h[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}

// bcKey names a broadcast: a newer one of the same kind and author
// replaces the older in the queue.
type bcKey struct {
	kind rollout.Kind
	from string
}

type bcItem struct {
	key      bcKey
	author   int              // host id of a row's author (index in rowq); -1: indexed in qidx
	msg      *rollout.Message // points into a node's Output, never modified
	size     int
	sends    int
	dead     bool
	replaced bool // a newer item took its place in the index
	relay    bool // relayed, not originated here
}
