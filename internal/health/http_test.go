package health

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer is one scripted reply of a fake backend.
type answer struct {
	status int
	body   string
	hang   bool // answer nothing until the client gives up
	header map[string]string
}

// sequenceBackend replays its answers in order, one per request, and
// records what each request looked like.
type sequenceBackend struct {
	mu      sync.Mutex
	answers []answer
	hosts   []string
	snis    []string
	remotes map[string]bool
}

func (b *sequenceBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	a := answer{status: 200, body: "Test Page"}
	if len(b.answers) > 0 {
		a, b.answers = b.answers[0], b.answers[1:]
	}
	b.hosts = append(b.hosts, r.Host)
	if r.TLS != nil {
		b.snis = append(b.snis, r.TLS.ServerName)
	}
	b.remotes[r.RemoteAddr] = true
	b.mu.Unlock()
	if a.hang {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	}
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(a.status)
	io.WriteString(w, a.body)
}

func startBackend(t *testing.T, tlsCert *tls.Certificate, answers ...answer) (*sequenceBackend, netip.AddrPort) {
	t.Helper()
	b := &sequenceBackend{answers: answers, remotes: map[string]bool{}}
	srv := httptest.NewUnstartedServer(b)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the checks fail on purpose
	if tlsCert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*tlsCert}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return b, addrPort(t, srv.Listener.Addr())
}

func httpSpec() Spec {
	return Spec{Type: "http", Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1,
		Path: "/ldirector.html", ExpectBody: "Test Page"}
}

func TestHTTPSequence(t *testing.T) {
	t.Parallel()
	b, addr := startBackend(t, nil,
		answer{status: 200, body: "<h1>Test Page</h1>"},
		answer{status: 200, body: "Test Page"},
		answer{status: 500, body: "Test Page"},
		answer{hang: true},
		answer{status: 200, body: "It works"},
		answer{status: 404, body: "Test Page"},
		answer{status: 302, header: map[string]string{"Location": "http://127.0.0.1:1/"}, body: "Test Page"},
		answer{status: 200, body: "Test Page"},
	)
	want := []string{
		"",
		"",
		"status 500, want 200-399",
		"response from " + addr.String() + ": timeout after 1s",
		`body lacks "Test Page"`,
		"status 404, want 200-399",
		"", // a redirect is judged, not followed
		"",
	}
	for i, w := range want {
		if got := reason(check(t, httpSpec(), Target{Addr: addr})); got != w {
			t.Errorf("check %d: got %q, want %q", i+1, got, w)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.remotes) != len(want) {
		t.Errorf("got %d client connections for %d checks, want a new connection per check", len(b.remotes), len(want))
	}
	for i, h := range b.hosts {
		if h != addr.String() {
			t.Errorf("request %d: got Host %q, want the target address %q", i+1, h, addr)
		}
	}
}

func TestHTTPExpectations(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 70<<10) + "Test Page"
	tests := []struct {
		name   string
		answer answer
		spec   func(*Spec)
		want   string
	}{
		{"status list", answer{status: 204}, func(s *Spec) {
			s.ExpectBody = ""
			s.ExpectStatus = []string{"200", "301-302"}
		}, "status 204, want 200 or 301-302"},
		{"status 2xx", answer{status: 204}, func(s *Spec) {
			s.ExpectBody = ""
			s.ExpectStatus = []string{"2xx"}
		}, ""},
		{"regex match", answer{status: 200, body: "version 1.2.3 Test Page"}, func(s *Spec) {
			s.ExpectRegex = `version \d+\.\d+`
		}, ""},
		{"regex mismatch", answer{status: 200, body: "Test Page"}, func(s *Spec) {
			s.ExpectRegex = `^OK$`
		}, `body does not match "^OK$"`},
		{"body beyond 64 KiB is not read", answer{status: 200, body: big}, nil, `body lacks "Test Page"`},
		{"HEAD", answer{status: 200}, func(s *Spec) {
			s.Method = "HEAD"
			s.ExpectBody = ""
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, addr := startBackend(t, nil, tt.answer)
			s := httpSpec()
			if tt.spec != nil {
				tt.spec(&s)
			}
			if got := reason(check(t, s, Target{Addr: addr})); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHTTPHostHeader(t *testing.T) {
	t.Parallel()
	b, addr := startBackend(t, nil)
	s := httpSpec()
	s.Host = "www.example.com"
	if err := check(t, s, Target{Addr: addr}); err != nil {
		t.Fatalf("got %v, want up", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.hosts) != 1 || b.hosts[0] != "www.example.com" {
		t.Errorf("got Host %q, want [www.example.com]", b.hosts)
	}
}

func TestHTTPUnreachable(t *testing.T) {
	t.Parallel()
	refused := closedPort(t, "tcp")
	hanging := fullListener(t)
	tests := []struct {
		name string
		addr netip.AddrPort
		want string
	}{
		{"refused", refused, "connect " + refused.String() + ": connection refused"},
		{"hanging connect", hanging, "connect " + hanging.String() + ": timeout after 1s"},
		{"no address", netip.AddrPort{}, "no check address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := reason(check(t, httpSpec(), Target{Addr: tt.addr})); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHTTPClosedWithoutAnswer(t *testing.T) {
	t.Parallel()
	addr := serveTCP(t, func(net.Conn) {}) // accepts and closes
	got := reason(check(t, httpSpec(), Target{Addr: addr}))
	// The close races with the request's write: either is the backend
	// hanging up without an answer.
	if got != "response from "+addr.String()+": connection closed" && got != "response from "+addr.String()+": connection reset" {
		t.Errorf("got %q, want the response to fail with a closed connection", got)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and backend.test that no
// one trusts.
func selfSigned(t *testing.T) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "backend.test"},
		DNSNames:     []string{"backend.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestHTTPS(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	tests := []struct {
		name    string
		spec    func(*Spec)
		want    string // a substring of the reason; "" = up
		wantSNI string
	}{
		{"skip verify", func(s *Spec) { s.TLSSkipVerify = true }, "", ""},
		{"skip verify with SNI", func(s *Spec) { s.TLSSkipVerify = true; s.SNI = "backend.test" }, "", "backend.test"},
		{"SNI from Host", func(s *Spec) { s.TLSSkipVerify = true; s.Host = "backend.test:443" }, "", "backend.test"},
		{"untrusted", nil, "tls handshake with 127.0.0.1:", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, addr := startBackend(t, cert)
			s := httpSpec()
			s.Type = "https"
			// No case waits for the timeout: a loaded machine may take
			// over a second for a handshake under -race.
			s.Timeout = 10 * time.Second
			if tt.spec != nil {
				tt.spec(&s)
			}
			got := reason(check(t, s, Target{Addr: addr}))
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.want != "" {
				t.Logf("reason: %s", got)
				if !strings.Contains(got, "certificate") {
					t.Errorf("got %q, want a certificate error", got)
				}
				return
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			if len(b.snis) != 1 || b.snis[0] != tt.wantSNI {
				t.Errorf("got SNI %q, want [%q]", b.snis, tt.wantSNI)
			}
		})
	}
}
