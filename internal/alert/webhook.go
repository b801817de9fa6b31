package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// post sends body to h's webhook within h.Timeout; a 2xx answer is a
// delivery.
func (d *Dispatcher) post(ctx context.Context, h *Hook, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	where := redact(h.Webhook)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Webhook, bytes.NewReader(body))
	if err != nil {
		// The error would quote the URL.
		return fmt.Errorf("webhook %s: invalid URL", where)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "fulcrum-alert")
	resp, err := d.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			err = fmt.Errorf("no answer within the %v timeout", h.Timeout)
		case ctx.Err() != nil:
			err = errors.New("cancelled at shutdown")
		default:
			// url.Error would repeat the whole URL.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
		}
		return fmt.Errorf("webhook %s: %w", where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	reason := resp.Status
	if s := strings.TrimSpace(strings.ToValidUTF8(string(msg), "")); s != "" {
		reason += ": " + s
	}
	return fmt.Errorf("webhook %s: %s", where, reason)
}

// redact keeps scheme and host of a webhook URL for logs and status:
// services like Slack put the secret in the path.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}
