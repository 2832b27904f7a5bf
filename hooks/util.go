package hooks

import (
	"sort"
	"strings"
)

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// tailBuffer keeps the last lines of a script's output for error messages;
// the full output is in the deployment's log.
type tailBuffer struct {
	lines []string
}

const tailLines = 20

func (t *tailBuffer) add(s string) {
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	t.lines = append(t.lines, s)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

func (t *tailBuffer) String() string { return strings.Join(t.lines, "\n") }
