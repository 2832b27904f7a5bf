package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestKeygen(t *testing.T) {
	a, b := drover(t, nil, "keygen"), drover(t, nil, "keygen")
	for _, r := range []result{a, b} {
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(r.stdout))
		if err != nil || len(key) != 32 {
			t.Fatalf("key %q: %d bytes, err %v; want 32 bytes of base64", r.stdout, len(key), err)
		}
	}
	if a.stdout == b.stdout {
		t.Error("two keygen runs printed the same key")
	}
}
