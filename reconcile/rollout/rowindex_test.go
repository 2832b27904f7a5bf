package rollout

import (
	"strconv"
	"testing"
)

// TestRowIndex checks the flat index against a map through growth and
// updates: every recorded host is found with its latest values, no other.
func TestRowIndex(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 100, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			x := newRowIndex()
			want := map[string]*peer{}
			for i := 0; i < n; i++ {
				p := &peer{host: "host-" + strconv.Itoa(i), row: Row{Seq: uint64(i), Released: uint64(2 * i)}}
				x.set(p)
				want[p.host] = p
			}
			for i := 0; i < n; i += 3 { // updates keep the entry
				p := want["host-"+strconv.Itoa(i)]
				p.row.Seq, p.row.Released = p.row.Seq+100, p.row.Released+1
				x.set(p)
			}
			if x.used != len(want) {
				t.Fatalf("used = %d, want %d", x.used, len(want))
			}
			for h, p := range want {
				e := x.get(h)
				if e == nil || e.peer != p || e.seq != p.row.Seq || e.released != p.row.Released {
					t.Fatalf("get(%q) = %+v, want seq %d released %d", h, e, p.row.Seq, p.row.Released)
				}
			}
			for _, h := range []string{"host-" + strconv.Itoa(n), "other", "host-"} {
				if e := x.get(h); e != nil {
					t.Fatalf("get(%q) = %+v, want nil", h, e)
				}
			}
		})
	}
}
