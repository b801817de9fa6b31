package config

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestHTTPFilesAreReadAtLoad(t *testing.T) {
	t.Parallel()
	c, err := Load("testdata/valid-http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := c.Services[0].HTTP
	want, err := os.ReadFile("testdata/error-503.html")
	if err != nil {
		t.Fatal(err)
	}
	if got := h.ErrorBodies[503]; !bytes.Equal(got, want) {
		t.Errorf("ErrorBodies[503]: got %q, want %q", got, want)
	}
	crt := h.TLS.Certificates[0]
	if _, err := tls.X509KeyPair(crt.CertPEM, crt.KeyPEM); err != nil {
		t.Errorf("certificate PEM kept by Load: %v", err)
	}
	if got := h.TLS.TLSVersion(); got != tls.VersionTLS13 {
		t.Errorf("TLSVersion: got %x, want TLS 1.3", got)
	}
	if h.TLS.H2Value() || h.Cookie.HTTPOnlyValue() {
		t.Errorf("h2 and http_only: got true, want false as configured")
	}
	if got, want := c.Services[0].PoolName(1), "web/route1"; got != want {
		t.Errorf("PoolName: got %q, want %q", got, want)
	}
}

func TestFilePathRelativeToConfig(t *testing.T) {
	t.Parallel()
	c := &Config{File: "/etc/fulcrum/fulcrum.yaml"}
	for in, want := range map[string]string{
		"pages/503.html": "/etc/fulcrum/pages/503.html",
		"/abs/x":         "/abs/x",
		"stderr":         "stderr",
		"":               "",
	} {
		if got := c.FilePath(in); got != want {
			t.Errorf("FilePath(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestHTTPFilesFollowTheConfigDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busy.html"), []byte("busy"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "f.yaml")
	data := `services:
  - name: web
    listen: 10.0.0.1:80
    protocol: http
    backends: [{ address: 10.0.0.11:80 }]
    http: { error_pages: { 503: busy.html } }
`
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.Services[0].HTTP.ErrorBodies[503]); got != "busy" {
		t.Errorf("error page: got %q, want %q", got, "busy")
	}
}

func TestCookieKey(t *testing.T) {
	t.Parallel()
	parse := func(name, secret string) *Service {
		c := mustParse(t, strings.NewReplacer("NAME", name, "SECRET", secret).Replace(`services:
  - name: NAME
    listen: 10.0.0.1:80
    protocol: http
    backends: [{ address: 10.0.0.11:80 }]
    http: { cookie: { secret: "SECRET" } }
`))
		return &c.Services[0]
	}
	a, again := parse("web", "s1").CookieKey(), parse("web", "s1").CookieKey()
	if !bytes.Equal(a, again) || len(a) != 32 {
		t.Fatalf("same service and secret: got %x and %x, want the same 32 bytes", a, again)
	}
	if bytes.Equal(a, parse("web", "s2").CookieKey()) {
		t.Errorf("another secret gave the same key")
	}
	if bytes.Equal(a, parse("api", "s1").CookieKey()) {
		t.Errorf("another service gave the same key")
	}
	if got := parse("web", "s1").HTTP.Cookie.Name; got != "FULCRUM_SRV" {
		t.Errorf("cookie name default: got %q", got)
	}
	if c := mustParse(t, minimal); c.Services[0].CookieKey() != nil || c.Services[0].HTTP != nil {
		t.Errorf("tcp service: got an http block or a cookie key")
	}
}

func TestHashCoversHTTPFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	page := filepath.Join(dir, "503.html")
	file := filepath.Join(dir, "f.yaml")
	data := `services:
  - name: web
    listen: 10.0.0.1:80
    protocol: http
    backends: [{ address: 10.0.0.11:80 }]
    http: { error_pages: { 503: 503.html } }
`
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	hashWith := func(content string) string {
		if err := os.WriteFile(page, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(file)
		if err != nil {
			t.Fatal(err)
		}
		return c.Hash()
	}
	a, again, b := hashWith("one"), hashWith("one"), hashWith("two")
	if a != again || a == b {
		t.Errorf("hashes: %s, %s after no change, %s after editing the page; want equal, then different", a, again, b)
	}
}
