// Package suggest finds the likely intended word for a misspelt one, for
// the "did you mean" of configuration and manifest errors.
package suggest

import "strings"

// Closest returns the candidate closest to s when it is close enough to be
// a likely typo (at most 2 edits, and at most half the candidate's length;
// case is ignored), else "".
func Closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if strings.EqualFold(s, c) {
			return c
		}
		if d := distance(strings.ToLower(s), strings.ToLower(c)); d < bestD && d <= len(c)/2 {
			best, bestD = c, d
		}
	}
	return best
}

// distance returns the edit distance of a and b, counting a swap of two
// neighbours as one edit (bytes; the inputs are short keys).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
