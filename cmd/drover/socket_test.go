package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover-dev/drover/daemon"
)

// TestFindSocket: the socket of a config that loads, else its raw
// api.socket, else the default; a warning for a file that does not load.
func TestFindSocket(t *testing.T) {
	dir := t.TempDir()
	const good = "cluster: {encrypt_key_file: /k}\napi: {socket: /run/x/drover.sock}\n"
	for _, tc := range []struct {
		name, yaml string // yaml "-": no file
		explicit   bool
		sock, warn string // warn "": no warning; else the whole warning, FILE for the path
	}{
		{"loads", good, false, "/run/x/drover.sock", ""},
		{"no file", "-", false, daemon.DefaultSocket, ""},
		{"no file asked for", "-", true, daemon.DefaultSocket,
			"FILE cannot be read (no such file or directory); using socket /run/drover/drover.sock"},
		{"typo", good + "applications:\n  - name: a\n    group: g\n    poll_intervall: 1m\n    source: {dir: /a}\n", false, "/run/x/drover.sock",
			`FILE does not parse (f.yaml:6: applications[0]: unknown key "poll_intervall"; did you mean "poll_interval"?); using socket /run/x/drover.sock`},
		{"several problems", good + "systemd: maybe\nnode: {root: rel}\n", false, "/run/x/drover.sock",
			`FILE does not parse (f.yaml:3: systemd: "maybe": want auto, system, user or off; 1 more: drover config check FILE); using socket /run/x/drover.sock`},
		{"bad socket itself", "api: {socket: [x]}\n", false, daemon.DefaultSocket,
			`FILE does not parse (f.yaml:1: api.socket: want a string, found a list); using socket /run/drover/drover.sock`},
		{"relative socket", "api: {socket: x.sock}\n", false, daemon.DefaultSocket,
			`FILE does not parse (f.yaml:1: api.socket: "x.sock" is not an absolute path); using socket /run/drover/drover.sock`},
		{"not YAML", "api: {socket: /run/x/drover.sock}\nnode:\n  name: a\n groups: []\n", false, daemon.DefaultSocket,
			`FILE does not parse (f.yaml:3: not valid YAML: did not find expected key); using socket /run/drover/drover.sock`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "f.yaml")
			os.Remove(path)
			if tc.yaml != "-" {
				if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			sock, warn := findSocket(path, tc.explicit)
			if want := strings.ReplaceAll(tc.warn, "FILE", path); sock != tc.sock || warn != want {
				t.Errorf("socket %s, warning:\n%s\nwant %s,\n%s", sock, warn, tc.sock, want)
			}
		})
	}
}
