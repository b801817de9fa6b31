package admin

import (
	"context"
	"encoding/json"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/api/v1/ha/"+url.PathEscape(group)+"/release", nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("admin: is fulcrum running? %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("release %s: %s", group, e.Error)
		}
		return fmt.Errorf("release %s: %s", group, resp.Status)
	}
	return nil
}
