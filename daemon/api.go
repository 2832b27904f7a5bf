package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/drover-dev/drover/hooks"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiBackend is what the HTTP handlers need from the agent.
type apiBackend interface {
	Status() Status
	DeploymentRecord(group, id string) (any, error)
	DeploymentLog(group, id string) (io.ReadCloser, error)
	SetPaused(ctx context.Context, app string, paused bool) error
	Members() Members
	RemoveMember(ctx context.Context, host, app string) ([]AppRoster, error)
	History(app string) ([]DeploymentSummary, error)
	AppDeployment(app, which string) (*hooks.Record, error)
	CopyLog(ctx context.Context, group, id string, w io.Writer, follow bool) error
	GroupHistory(group string) ([]DeploymentSummary, error)
}

// ErrNotFound says an application or deployment does not exist.
var ErrNotFound = errors.New("not found")

// mutatingHandler serves the root-only unix socket: reads and mutations.
func mutatingHandler(b apiBackend) http.Handler {
	mux := http.NewServeMux()
	addReadOnly(mux, b)
	mux.HandleFunc("GET /v1/deployments/{group}", func(w http.ResponseWriter, r *http.Request) {
		hs, err := b.GroupHistory(r.PathValue("group"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, hs)
	})
	// One of an application's deployments on this host: {which} is an ID,
	// a unique prefix, a sequence number or "latest".
	mux.HandleFunc("GET /v1/apps/{app}/deployments/{which}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := b.AppDeployment(r.PathValue("app"), r.PathValue("which"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	// Its hook log; ?follow=1 streams it until the deployment ends. The
	// deployment's ID is in the X-Drover-Deployment header.
	mux.HandleFunc("GET /v1/apps/{app}/deployments/{which}/log", func(w http.ResponseWriter, r *http.Request) {
		rec, err := b.AppDeployment(r.PathValue("app"), r.PathValue("which"))
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Drover-Deployment", rec.ID)
		w.Header().Set("X-Drover-Status", string(rec.Status))
		follow := r.URL.Query().Get("follow") == "1" || r.URL.Query().Get("follow") == "true"
		b.CopyLog(r.Context(), rec.Group, rec.ID, flushWriter{w}, follow)
	})
	mux.HandleFunc("GET /v1/deployments/{group}/{id}", func(w http.ResponseWriter, r *http.Request) {
		rec, err := b.DeploymentRecord(r.PathValue("group"), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	})
	mux.HandleFunc("GET /v1/deployments/{group}/{id}/log", func(w http.ResponseWriter, r *http.Request) {
		rc, err := b.DeploymentLog(r.PathValue("group"), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		defer rc.Close()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.Copy(w, rc)
	})
	for path, paused := range map[string]bool{"POST /v1/apps/{app}/pause": true, "POST /v1/apps/{app}/resume": false} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if err := b.SetPaused(r.Context(), r.PathValue("app"), paused); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"app": r.PathValue("app"), "paused": paused})
		})
	}
	// The operator's removal of a voter (`drover members remove`); ?app=
	// limits it to one application.
	mux.HandleFunc("POST /v1/members/{host}/remove", func(w http.ResponseWriter, r *http.Request) {
		rs, err := b.RemoveMember(r.Context(), r.PathValue("host"), r.URL.Query().Get("app"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, RemoveResult{Host: r.PathValue("host"), Before: rs})
	})
	return mux
}

// RemoveResult answers POST /v1/members/{host}/remove: the rosters in
// force when the removal was asked.
type RemoveResult struct {
	Host   string      `json:"host"`
	Before []AppRoster `json:"before"`
}

// metricsHandler serves the network listener: read-only.
func metricsHandler(b apiBackend, reg prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	addReadOnly(mux, b)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

func addReadOnly(mux *http.ServeMux, b apiBackend) {
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Members())
	})
	// This host's deployments of an application, newest first, without
	// the scripts' output (safe for the network listener).
	mux.HandleFunc("GET /v1/apps/{app}/history", func(w http.ResponseWriter, r *http.Request) {
		hs, err := b.History(r.PathValue("app"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, hs)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
}

// flushWriter flushes after every write, so that a followed log reaches
// the client as it grows.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) { return f.w.Write(p) }
func (f flushWriter) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrRefused):
		code = http.StatusConflict
	}
	writeJSON(w, code, apiError{Error: err.Error()})
}

// server is one HTTP server on one listener, owned by the agent.
type server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// listenUnix opens the API socket, replacing a stale one, readable and
// writable by root only.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("api socket directory: %w", err)
	}
	// A socket left by a killed agent refuses connections: remove it. One
	// that answers belongs to a running agent: refuse to start twice.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("api socket %s: another agent is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale api socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return ln, nil
}

func serve(ln net.Listener, h http.Handler, log *slog.Logger) *server {
	s := &server{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s
}

// close stops the server, letting requests in flight finish for a moment.
func (s *server) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}
