package tlsconf

import (
	"crypto/tls"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/l7/tlsconf/testcert"
)

// serve accepts TLS connections with cfg on loopback until the test ends,
// completing each handshake.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				var b [1]byte
				_, _ = c.Read(b[:])
			}()
		}
	}()
	return ln.Addr().String()
}

func TestSNIAndALPN(t *testing.T) {
	t.Parallel()
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	issue := func(names ...string) Pair {
		c, k, err := ca.Issue(names...)
		if err != nil {
			t.Fatal(err)
		}
		return Pair{CertPEM: c, KeyPEM: k, Name: names[0]}
	}
	cfg, err := New(Options{
		Pairs: []Pair{issue("default.test"), issue("a.example.com"), issue("*.b.example.com"), issue("127.0.0.1")},
		H2:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, cfg)
	tests := []struct {
		name, serverName, wantCN string
		protos                   []string
		wantProto                string
	}{
		{name: "exact", serverName: "a.example.com", wantCN: "a.example.com"},
		{name: "exact ignores case", serverName: "A.Example.COM", wantCN: "a.example.com"},
		{name: "wildcard", serverName: "x.b.example.com", wantCN: "*.b.example.com"},
		{name: "wildcard covers one label", serverName: "y.x.b.example.com", wantCN: "default.test"},
		{name: "unknown name takes the first", serverName: "other.test", wantCN: "default.test"},
		{name: "no SNI matches the address", serverName: "", wantCN: "127.0.0.1"},
		{name: "h2 offered", serverName: "a.example.com", wantCN: "a.example.com", protos: []string{"h2", "http/1.1"}, wantProto: "h2"},
		{name: "http/1.1 only client", serverName: "a.example.com", wantCN: "a.example.com", protos: []string{"http/1.1"}, wantProto: "http/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := tls.Dial("tcp", addr, &tls.Config{
				ServerName:         tt.serverName,
				NextProtos:         tt.protos,
				InsecureSkipVerify: true, // names are checked below, per case
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if got := st.PeerCertificates[0].Subject.CommonName; got != tt.wantCN {
				t.Errorf("certificate: got %q, want %q", got, tt.wantCN)
			}
			if got := st.NegotiatedProtocol; got != tt.wantProto {
				t.Errorf("ALPN: got %q, want %q", got, tt.wantProto)
			}
		})
	}

	// The selected certificate verifies against the CA for its name.
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "x.b.example.com", RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("verified handshake: %v", err)
	}
	c.Close()
}

func TestOptions(t *testing.T) {
	t.Parallel()
	ca, err := testcert.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	crt, key, err := ca.Issue("a.test")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := New(Options{Pairs: []Pair{{CertPEM: crt, KeyPEM: key}}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "http/1.1" {
		t.Errorf("NextProtos without h2: got %v, want [http/1.1]", cfg.NextProtos)
	}
	addr := serve(t, cfg)
	if c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err == nil {
		c.Close()
		t.Errorf("TLS 1.2 client accepted with min_version 1.3")
	}
	if _, err := New(Options{}); err == nil {
		t.Errorf("no pairs: got no error")
	}
	if _, err := New(Options{Pairs: []Pair{{CertPEM: key, KeyPEM: crt, Name: "swapped"}}}); err == nil {
		t.Errorf("swapped PEM: got no error")
	}
}
