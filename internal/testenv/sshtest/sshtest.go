// Package sshtest runs Debian's OpenSSH sshd on loopback for tests, with
// its own host key, configuration and authorized_keys in a temp dir, so
// that a git client can fetch over ssh:// exactly as from a real server
// (the session runs git-upload-pack from PATH).
package sshtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/drover-dev/drover/internal/testenv/gittest"
)

// Server is a running sshd.
type Server struct {
	Addr           string // 127.0.0.1:PORT
	User           string // the user the client logs in as (the test's user)
	KeyFile        string // client private key (OpenSSH PEM, unencrypted)
	KnownHostsFile string // known_hosts naming the server's host key
	OtherKeyFile   string // a key that is not authorized
}

// Start runs sshd until the test ends. It skips the test unless it runs
// as root (sshd needs it) and /usr/sbin/sshd exists.
func Start(t testing.TB) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sshd needs root: skipping the ssh git test")
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/sshd"); serr != nil {
			t.Skip("sshd not installed (apt-get install openssh-server)")
		}
		sshd = "/usr/sbin/sshd"
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation dir
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostPub, _ := newKey(t, filepath.Join(dir, "host_ed25519"))
	clientPub, clientKey := newKey(t, filepath.Join(dir, "client_ed25519"))
	_, otherKey := newKey(t, filepath.Join(dir, "other_ed25519"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := gittest.FreeAddr(t)
	host, port, _ := splitHostPort(addr)
	known := fmt.Sprintf("[%s]:%s %s", host, port, ssh.MarshalAuthorizedKey(hostPub))
	knownFile := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownFile, []byte(known), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`Port %s
ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers %s
LogLevel ERROR
`, port, host, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "sshd.pid"),
		filepath.Join(dir, "authorized_keys"), u.Username)
	cfgFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfgFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Cleanup kills the session children too
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	gittest.WaitListening(t, addr, done)
	return &Server{Addr: addr, User: u.Username, KeyFile: clientKey, KnownHostsFile: knownFile, OtherKeyFile: otherKey}
}

// URL is the ssh:// URL of an absolute repository path on this server.
func (s *Server) URL(repoPath string) string {
	return "ssh://" + s.User + "@" + s.Addr + repoPath
}

func splitHostPort(addr string) (string, string, error) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:], nil
		}
	}
	return addr, "", fmt.Errorf("no port in %s", addr)
}

// newKey writes a new ed25519 private key to file and returns its public
// key and the file name.
func newKey(t testing.TB, file string) (ssh.PublicKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sp, file
}
