package admin

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// rawRequest sends req as written over a new connection to addr and
// returns the answer's status code.
func rawRequest(t *testing.T, addr, req string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A page whose name rebinds to 127.0.0.1 is same-origin to the browser:
// the request carries Host and Origin with the page's name and comes
// from loopback. Without a token file that was enough to act.
func TestHostRebinding(t *testing.T) {
	t.Parallel()
	ctl := &fakeControl{}
	addr := serveControl(t, ctl, "")
	_, port, _ := net.SplitHostPort(addr)
	tests := []struct {
		name, method, path, host string
		origin                   string
		code                     int
	}{
		{"rebound name disables a backend", "POST", "/api/v1/services/web/backends/10.0.0.1:80/disable", "evil.example:" + port, "http://evil.example:" + port, 421},
		{"rebound name reloads", "POST", "/api/v1/reload", "evil.example:" + port, "http://evil.example:" + port, 421},
		{"rebound name reads status", "GET", "/api/v1/status", "evil.example:" + port, "", 421},
		{"rebound name without port", "GET", "/metrics", "evil.example", "", 421},
		{"localhost.evil.example", "GET", "/healthz", "localhost.evil.example:" + port, "", 421},
		{"IPv4 literal acts", "POST", "/api/v1/reload", addr, "", 200},
		{"other IPv4 literal", "GET", "/healthz", "192.0.2.1:" + port, "", 200},
		{"IPv6 literal", "GET", "/healthz", "[::1]:" + port, "", 200},
		{"IPv6 literal without port", "GET", "/healthz", "[::1]", "", 200},
		{"localhost", "POST", "/api/v1/reload", "localhost:" + port, "", 200},
		{"LOCALHOST.", "GET", "/healthz", "LOCALHOST.:" + port, "", 200},
		{"same-origin dashboard on localhost", "POST", "/api/v1/reload", "localhost:" + port, "http://localhost:" + port, 200},
	}
	for _, tt := range tests {
		req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n", tt.method, tt.path, tt.host)
		if tt.origin != "" {
			req += "Origin: " + tt.origin + "\r\nSec-Fetch-Site: same-origin\r\n"
		}
		if got := rawRequest(t, addr, req+"\r\n"); got != tt.code {
			t.Errorf("%s: got %d, want %d", tt.name, got, tt.code)
		}
	}
	ctl.mu.Lock()
	calls := ctl.calls
	ctl.mu.Unlock()
	if want := []string{"reload", "reload", "reload"}; fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("controller calls %v, want %v", calls, want)
	}
	m := scrape(t, addr)
	if !strings.Contains(m, `fulcrum_admin_requests_refused_total{reason="host"} 5`) {
		t.Errorf("metrics lack 5 host refusals:\n%s", grepLines(m, "refused"))
	}
}

func TestBearerSchemeCaseInsensitive(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef"
	ctl := &fakeControl{}
	addr := serveControl(t, ctl, token)
	tests := []struct {
		auth string
		code int
	}{
		{"Bearer " + token, 200},
		{"bearer " + token, 200},
		{"BEARER " + token, 200},
		{"bEaReR  " + token, 200},
		{"Bearer " + token + " ", 200},
		{"Basic " + token, 401},
		{"Bearer" + token, 401},
		{token, 401},
		{"bearer " + token + "x", 401},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/reload", nil)
		req.Header.Set("Authorization", tt.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("Authorization %q: got %d, want %d", tt.auth, resp.StatusCode, tt.code)
		}
	}
	m := scrape(t, addr)
	if !strings.Contains(m, `fulcrum_admin_requests_refused_total{reason="token"} 4`) {
		t.Errorf("metrics lack 4 token refusals:\n%s", grepLines(m, "refused"))
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// FuzzHostAllowed checks the Host rule against its definition: allowed
// exactly when empty, an IP literal (with or without a port) or
// localhost; never a panic. Seeds in testdata/fuzz/FuzzHostAllowed.
func FuzzHostAllowed(f *testing.F) {
	f.Fuzz(func(t *testing.T, host string) {
		got := hostAllowed(host)
		name := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			name = h
		} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			name = host[1 : len(host)-1]
		}
		_, ipErr := netip.ParseAddr(name)
		want := host == "" || ipErr == nil || strings.EqualFold(strings.TrimSuffix(name, "."), "localhost")
		if got != want {
			t.Errorf("hostAllowed(%q): got %v, want %v", host, got, want)
		}
		if got && strings.Contains(strings.ToLower(name), "evil") {
			t.Errorf("hostAllowed(%q): a name passed", host)
		}
	})
}
