package appspec

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxWork bounds how many YAML nodes one Parse looks at. Aliases let a small
// file reference the same large list many times; without a bound a
// kilobyte could cost minutes.
const maxWork = 100_000

// maxMergeDepth bounds nested "<<" merge keys.
const maxMergeDepth = 8

// entry is one key of a mapping, with its value resolved (aliases followed).
type entry struct {
	key   string
	line  int // line of the key
	value *yaml.Node
}

// walker reads yaml.v3 nodes: it follows aliases, applies merge keys,
// reports duplicate keys and stops when the work budget is spent.
type walker struct {
	findings
	work      int
	exhausted bool
}

// spend takes one unit of work; false once the budget is gone.
func (w *walker) spend() bool {
	w.work++
	if w.work <= maxWork {
		return true
	}
	if !w.exhausted {
		w.exhausted = true
		w.findings.errorf(0, "", "too complex: more than %d YAML nodes to check (aliases count each time they are used)", maxWork)
	}
	return false
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or a YAML null ("", "~", "null").
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || n.Kind == yaml.AliasNode || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// isQuoted reports whether a scalar was written in quotes.
func isQuoted(n *yaml.Node) bool {
	return n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
}

// describe names what a node is, for messages: `the string "abc"`, `a list`.
func describe(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case isNull(n):
		return "nothing"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Tag == "!!bool":
		return "the boolean " + n.Value
	case n.Tag == "!!int" || n.Tag == "!!float":
		return "the number " + n.Value
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// join builds a field path: join("hooks", "AfterInstall") = "hooks.AfterInstall".
func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// index builds a field path for a list item: index("files", 2) = "files[2]".
func index(parent string, i int) string { return fmt.Sprintf("%s[%d]", parent, i) }

// mapping returns the keys of mapping node n in order. Merge keys ("<<")
// are applied with the explicit keys taking precedence; a duplicate key is
// a problem (CodeDeploy's YAML reader silently keeps the last one).
func (w *walker) mapping(n *yaml.Node, field string) []entry {
	return w.mappingDepth(n, field, 0)
}

func (w *walker) mappingDepth(n *yaml.Node, field string, depth int) []entry {
	seen := map[string]int{}
	var out, merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !w.spend() {
			break
		}
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode {
			w.errorf(n.Content[i].Line, field, "keys must be plain strings, got %s", describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			merged = append(merged, w.merge(v, field, depth)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.errorf(k.Line, join(field, k.Value), "duplicate key (first defined at line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, entry{key: k.Value, line: k.Line, value: v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key]; !ok {
			seen[e.key] = e.line
			out = append(out, e)
		}
	}
	return out
}

// merge returns the entries a "<<" key brings in: one mapping or a list of them.
func (w *walker) merge(v *yaml.Node, field string, depth int) []entry {
	if depth >= maxMergeDepth {
		w.errorf(v.Line, field, "merge keys (<<) nested more than %d deep", maxMergeDepth)
		return nil
	}
	switch v.Kind {
	case yaml.MappingNode:
		return w.mappingDepth(v, field, depth+1)
	case yaml.SequenceNode:
		var out []entry
		seen := map[string]bool{}
		for _, m := range v.Content {
			m = resolve(m)
			if m == nil || m.Kind != yaml.MappingNode {
				w.errorf(v.Line, field, "a merge key (<<) takes a mapping or a list of mappings")
				return out
			}
			for _, e := range w.mappingDepth(m, field, depth+1) {
				if !seen[e.key] { // earlier mappings in the list win
					seen[e.key] = true
					out = append(out, e)
				}
			}
		}
		return out
	default:
		w.errorf(v.Line, field, "a merge key (<<) takes a mapping or a list of mappings, got %s", describe(v))
		return nil
	}
}

// items returns the resolved items of sequence node n, spending work.
func (w *walker) items(n *yaml.Node) []*yaml.Node {
	out := make([]*yaml.Node, 0, len(n.Content))
	for _, c := range n.Content {
		if !w.spend() {
			break
		}
		out = append(out, resolve(c))
	}
	return out
}

// unknownKey warns about a key CodeDeploy would ignore, suggesting the
// known key it most likely meant.
func (w *walker) unknownKey(e entry, field string, known []string) {
	msg := "unknown key, ignored (as CodeDeploy does)"
	if s := suggest(e.key, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	w.warnf(e.line, join(field, e.key), "%s", msg)
}

// suggest returns the candidate closest to s when it is close enough to be
// a likely typo, else "".
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD && d < len(c)/2 {
			best, bestD = c, d
		}
	}
	return best
}

// levenshtein returns the edit distance of a and b (bytes; inputs are short keys).
func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// errorf records a problem, unless the work budget is spent: the entries
// not looked at would otherwise all seem to be missing.
func (w *walker) errorf(line int, field, format string, args ...any) {
	if !w.exhausted {
		w.findings.errorf(line, field, format, args...)
	}
}

// warnf records a warning, unless the work budget is spent.
func (w *walker) warnf(line int, field, format string, args ...any) {
	if !w.exhausted {
		w.findings.warnf(line, field, format, args...)
	}
}
