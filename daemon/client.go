package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/drover-dev/drover/hooks"
)

// Client talks to a local agent over its unix socket; the CLI uses it.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client of the agent listening on socket.
func NewClient(socket string) *Client {
	return &Client{
		socket: socket,
		hc: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", socket)
				},
			},
		},
	}
}

// Status fetches the fleet view.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, "/v1/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// SetPaused pauses or resumes an application fleet-wide.
func (c *Client) SetPaused(ctx context.Context, app string, paused bool) error {
	verb := "resume"
	if paused {
		verb = "pause"
	}
	return c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/"+verb, nil)
}

// Members fetches the gossip members and every application's roster.
func (c *Client) Members(ctx context.Context) (*Members, error) {
	var m Members
	if err := c.do(ctx, http.MethodGet, "/v1/members", &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// RemoveMember asks the agent to propose rosters without host, for every
// application whose roster has it or for app only (""): the operator's
// removal of a voter. It returns the rosters in force when asked.
func (c *Client) RemoveMember(ctx context.Context, host, app string) ([]AppRoster, error) {
	path := "/v1/members/" + url.PathEscape(host) + "/remove"
	if app != "" {
		path += "?app=" + url.QueryEscape(app)
	}
	var res RemoveResult
	if err := c.do(ctx, http.MethodPost, path, &res); err != nil {
		return nil, err
	}
	return res.Before, nil
}

// DeploymentLog copies a deployment's hook log to w.
func (c *Client) DeploymentLog(ctx context.Context, group, id string, w io.Writer) error {
	resp, err := c.request(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(group)+"/"+url.PathEscape(id)+"/log")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// History lists this host's deployments of app, newest first.
func (c *Client) History(ctx context.Context, app string) ([]DeploymentSummary, error) {
	var hs []DeploymentSummary
	if err := c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/history", &hs); err != nil {
		return nil, err
	}
	return hs, nil
}

// GroupHistory lists a deployment group's records on this host, newest
// first (GET /v1/deployments/GROUP).
func (c *Client) GroupHistory(ctx context.Context, group string) ([]DeploymentSummary, error) {
	var hs []DeploymentSummary
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(group), &hs); err != nil {
		return nil, err
	}
	return hs, nil
}

// AppDeployment fetches one of app's deployment records on this host:
// which is an ID, a unique prefix, a sequence number or "latest".
func (c *Client) AppDeployment(ctx context.Context, app, which string) (*hooks.Record, error) {
	var r hooks.Record
	if err := c.do(ctx, http.MethodGet, "/v1/apps/"+url.PathEscape(app)+"/deployments/"+url.PathEscape(which), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// AppDeploymentLog copies the hook log of one of app's deployments to w
// (which as for AppDeployment); with follow, until the deployment ends or
// ctx does. It returns the deployment's ID.
func (c *Client) AppDeploymentLog(ctx context.Context, app, which string, follow bool, w io.Writer) (string, error) {
	path := "/v1/apps/" + url.PathEscape(app) + "/deployments/" + url.PathEscape(which) + "/log"
	hc := c.hc
	if follow {
		path += "?follow=1"
		cp := *c.hc
		cp.Timeout = 0 // a followed deployment may run for an hour
		hc = &cp
	}
	resp, err := c.requestWith(ctx, hc, http.MethodGet, path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	if err != nil && ctx.Err() != nil {
		err = nil // interrupted by the operator
	}
	return resp.Header.Get("X-Drover-Deployment"), err
}

func (c *Client) request(ctx context.Context, method, path string) (*http.Response, error) {
	return c.requestWith(ctx, c.hc, method, path)
}

func (c *Client) requestWith(ctx context.Context, hc *http.Client, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://drover"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("no agent listening on %s (is drover running? systemctl status drover): %w", c.socket, err)
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("%s: permission denied: the API socket is root's (use sudo): %w", c.socket, err)
		}
		return nil, fmt.Errorf("agent at %s: %w", c.socket, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var ae apiError
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ae) == nil && ae.Error != "" {
			return nil, fmt.Errorf("agent: %s", ae.Error)
		}
		return nil, fmt.Errorf("agent: %s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

func (c *Client) do(ctx context.Context, method, path string, out any) error {
	resp, err := c.request(ctx, method, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent: decode %s: %w", path, err)
	}
	return nil
}
