package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// FetchStatus reads GET /api/v1/status from the admin API at addr
// (host:port).
func FetchStatus(ctx context.Context, addr string) (*Status, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/api/v1/status", nil)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin: is fulcrum running? %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("admin: GET /api/v1/status: %s: %s", resp.Status, body)
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("admin: decode status: %w", err)
	}
	return &st, nil
}

// ReleaseGroup asks the node at addr to hand an HA group's VIPs over.
func ReleaseGroup(ctx context.Context, addr, token, group string) error {
	return call(ctx, http.MethodPost, addr, token, "/api/v1/ha/"+url.PathEscape(group)+"/release", nil, nil)
}

// ReclaimGroup asks the node at addr to undo `ha release` of a group.
func ReclaimGroup(ctx context.Context, addr, token, group string) error {
	return call(ctx, http.MethodPost, addr, token, "/api/v1/ha/"+url.PathEscape(group)+"/reclaim", nil, nil)
}

// SetBackendState drains ("drain"), disables ("maint") or enables
// ("ready") a backend of the node at addr and returns it as it is now.
func SetBackendState(ctx context.Context, addr, token, service, backend, state string) (*Backend, error) {
	action := map[string]string{"drain": "drain", "maint": "disable", "ready": "enable"}[state]
	if action == "" {
		return nil, fmt.Errorf("admin: unknown admin state %q", state)
	}
	var b Backend
	return &b, call(ctx, http.MethodPost, addr, token, backendPath(service, backend)+"/"+action, nil, &b)
}

// SetBackendWeight sets a backend's weight until the next reload.
func SetBackendWeight(ctx context.Context, addr, token, service, backend string, weight int) (*Backend, error) {
	var b Backend
	return &b, call(ctx, http.MethodPut, addr, token, backendPath(service, backend)+"/weight", WeightRequest{Weight: &weight}, &b)
}

// AddBackend adds a backend to a service until the next reload.
func AddBackend(ctx context.Context, addr, token, service string, nb NewBackend) (*Backend, error) {
	var b Backend
	return &b, call(ctx, http.MethodPost, addr, token, "/api/v1/services/"+url.PathEscape(service)+"/backends", nb, &b)
}

// RemoveBackend removes a backend from a service until the next reload.
func RemoveBackend(ctx context.Context, addr, token, service, backend string) (*Backend, error) {
	var b Backend
	return &b, call(ctx, http.MethodDelete, addr, token, backendPath(service, backend), nil, &b)
}

// Reload makes the node reload its config file, as SIGHUP does, and
// returns the new config hash; a rejected file is a *RejectedError.
func Reload(ctx context.Context, addr, token string) (string, error) {
	var r ReloadResult
	return r.ConfigHash, call(ctx, http.MethodPost, addr, token, "/api/v1/reload", nil, &r)
}

func backendPath(service, backend string) string {
	return "/api/v1/services/" + url.PathEscape(service) + "/backends/" + url.PathEscape(backend)
}

// call sends an action with the bearer token and decodes the answer into
// out (if not nil). An error answer becomes an error with the server's
// message; 422 becomes a *RejectedError.
func call(ctx context.Context, method, addr, token, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin: is fulcrum running? %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string   `json:"error"`
			Errors []string `json:"errors"`
		}
		_ = json.Unmarshal(data, &e)
		switch {
		case resp.StatusCode == http.StatusUnprocessableEntity && len(e.Errors) > 0:
			return &RejectedError{Errors: e.Errors}
		case e.Error != "":
			// The server's message says what and why; the CLI prints it as is.
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin: decode %s: %w", path, err)
		}
	}
	return nil
}
