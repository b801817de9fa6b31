package proxy

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzFindCookie: the Cookie field is client bytes. Whatever it holds,
// the lookup must not panic, and a value it returns must come from the
// field and follow "name=".
func FuzzFindCookie(f *testing.F) {
	for _, s := range []string{
		"SRV=0123456789abcdef", "a=1; SRV=x; b=2", "SRV=\"quoted\"", "SRV", "SRV=", ";;;", "SRVX=1; SRV=2",
		"  SRV=1  ", "SRV=1;SRV=2", "\"", "=;=",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got := findCookie(v, "SRV")
		if got == nil {
			return
		}
		if !bytes.Contains(v, got) {
			t.Fatalf("findCookie(%q) = %q, not a part of the field", v, got)
		}
		if !bytes.Contains(v, []byte("SRV=")) {
			t.Fatalf("findCookie(%q) = %q without SRV=", v, got)
		}
	})
}

// FuzzMatch: routing reads the client's Host and path; any bytes must
// land on a route (or the default) without panicking, and a Host route
// must match only its host.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"api.example.com", "API.EXAMPLE.COM:80", "[::1]:8080", "x.example.org", ".example.org", "", ":", "[", "a:b:c"} {
		f.Add([]byte(s), []byte("/static/x"))
	}
	s := &snapshot{routes: []route{
		{host: "api.example.com"},
		{host: ".example.org", wildcard: true, prefix: "/app"},
		{prefix: "/static/"},
	}}
	f.Fuzz(func(t *testing.T, host, path []byte) {
		r := s.match(host, path)
		h := strings.ToLower(string(stripPort(host)))
		switch r {
		case &s.routes[0]:
			if h != "api.example.com" {
				t.Fatalf("host %q matched api.example.com", host)
			}
		case &s.routes[1]:
			if !strings.HasSuffix(h, ".example.org") || h == ".example.org" || !bytes.HasPrefix(path, []byte("/app")) {
				t.Fatalf("host %q path %q matched *.example.org/app", host, path)
			}
		case &s.routes[2]:
			if !bytes.HasPrefix(path, []byte("/static/")) {
				t.Fatalf("path %q matched /static/", path)
			}
		}
	})
}
