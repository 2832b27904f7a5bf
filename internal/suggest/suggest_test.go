package suggest

import "testing"

func TestClosest(t *testing.T) {
	keys := []string{"poll_interval", "name", "group", "groups", "source"}
	for _, tc := range []struct{ in, want string }{
		{"poll_intervall", "poll_interval"},
		{"nmae", "name"}, // a swap of neighbours is one edit
		{"GROUP", "group"},
		{"grops", "groups"},
		{"zzzzzz", ""},
		{"sourec", "source"},
		{"x", ""},
	} {
		if got := Closest(tc.in, keys); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
