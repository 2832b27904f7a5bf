package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover-dev/drover/daemon"
)

// socketPath is the local agent's API socket: --socket; else api.socket of
// the config file. The commands that only talk to the agent (status,
// pause, resume, members) must work when the config has just been saved
// with a typo, which is when an operator needs them, so a config that does
// not load is no error: the socket is then its raw api.socket if the YAML
// can be read that far, else the default, and one warning line on stderr
// names the broken file and its first problem.
func (g *globalFlags) socketPath() string {
	if g.socket != "" {
		return g.socket
	}
	explicit := g.root != nil && g.root.PersistentFlags().Changed("config")
	sock, warning := findSocket(g.config, explicit)
	if warning != "" && g.root != nil {
		fmt.Fprintln(g.root.ErrOrStderr(), "warning: "+warning)
	}
	return sock
}

// findSocket returns the API socket that the config file at path names,
// and a warning when the file does not load. A missing file is no warning
// unless it was asked for (explicit): the default socket is then right.
func findSocket(path string, explicit bool) (sock, warning string) {
	data, err := daemon.ReadConfigFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return daemon.DefaultSocket, ""
		}
		return daemon.DefaultSocket, fmt.Sprintf("%s cannot be read (%v); using socket %s", path, unwrapPathError(err), daemon.DefaultSocket)
	}
	cfg, err := daemon.ParseConfig(path, data)
	if err == nil {
		return cfg.API.Socket, ""
	}
	sock = daemon.RawSocket(data)
	if sock == "" {
		sock = daemon.DefaultSocket
	}
	first, more := err.Error(), 0
	var ce *daemon.ConfigError
	if errors.As(err, &ce) && len(ce.Problems) > 0 {
		first, more = ce.Problems[0], len(ce.Problems)-1
	}
	// The warning names the file once; its problem names it by base name.
	if rest, ok := strings.CutPrefix(first, path+":"); ok {
		first = filepath.Base(path) + ":" + rest
	}
	if more > 0 {
		first += fmt.Sprintf("; %d more: drover config check %s", more, path)
	}
	return sock, fmt.Sprintf("%s does not parse (%s); using socket %s", path, first, sock)
}

// unwrapPathError drops the "read config: open PATH:" wrapping of a read
// error whose path the message already names.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
