package deployid

import "testing"

func TestOf(t *testing.T) {
	for _, tt := range []struct {
		parts []string
		want  string
	}{
		// sha256("hello-web\x00web-prod\x003f2a9c1d\x001\x00")
		{[]string{"hello-web", "web-prod", "3f2a9c1d", "1"}, "d-00c268693a06"},
		{[]string{"hello-web", "web-prod", "3f2a9c1d", "1", "lineage-1"}, "d-4fb27569bc73"},
		// an empty last part is a part: not the same as leaving it out
		{[]string{"hello-web", "web-prod", "abc123", "1", ""}, "d-13acdc871704"},
	} {
		if got := Of(tt.parts...); got != tt.want {
			t.Errorf("Of(%q) = %s, want %s", tt.parts, got, tt.want)
		}
	}
	if Of("ab", "c") == Of("a", "bc") {
		t.Error("part boundaries do not count")
	}
}
