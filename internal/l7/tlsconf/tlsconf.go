// Package tlsconf builds the server-side *tls.Config of an http service
// from PEM certificate and key pairs: certificate selection by SNI, ALPN
// for HTTP/2 and HTTP/1.1, and a minimum version.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Pair is one certificate chain (leaf first) and its private key, PEM.
type Pair struct {
	CertPEM, KeyPEM []byte
	// Name identifies the pair in errors, e.g. its file names.
	Name string
}

// Options configure New.
type Options struct {
	// Pairs are the certificates; the first is the default for clients
	// that send no server name or one that no certificate covers.
	Pairs []Pair
	// MinVersion is tls.VersionTLS12 (used when 0) or tls.VersionTLS13.
	MinVersion uint16
	// H2 offers HTTP/2 by ALPN before HTTP/1.1.
	H2 bool
}

// ALPN protocol names.
const (
	ProtoH2    = "h2"
	ProtoHTTP1 = "http/1.1"
)

// New returns a server *tls.Config whose GetCertificate picks, for the
// client's server name, a certificate naming it exactly, else one whose
// wildcard covers it, else the first pair. Among several candidates for
// a name (an RSA and an ECDSA one) the first the client supports wins.
func New(o Options) (*tls.Config, error) {
	if len(o.Pairs) == 0 {
		return nil, errors.New("tlsconf: no certificate")
	}
	s := &selector{exact: map[string][]*tls.Certificate{}, wildcard: map[string][]*tls.Certificate{}}
	for i, p := range o.Pairs {
		c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: certificate %d %s: %w", i, p.Name, err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("tlsconf: certificate %d %s: %w", i, p.Name, err)
		}
		c.Leaf = leaf
		s.add(&c)
	}
	min := o.MinVersion
	if min == 0 {
		min = tls.VersionTLS12
	}
	protos := []string{ProtoHTTP1}
	if o.H2 {
		protos = []string{ProtoH2, ProtoHTTP1}
	}
	return &tls.Config{
		MinVersion:     min,
		NextProtos:     protos,
		GetCertificate: s.get,
	}, nil
}

// selector indexes certificates by the names they cover.
type selector struct {
	all      []*tls.Certificate
	exact    map[string][]*tls.Certificate // lower-case DNS name or IP
	wildcard map[string][]*tls.Certificate // "example.com" for "*.example.com"
}

func (s *selector) add(c *tls.Certificate) {
	s.all = append(s.all, c)
	names := c.Leaf.DNSNames
	if len(names) == 0 && c.Leaf.Subject.CommonName != "" {
		// Certificates without SANs, still seen in self-made setups.
		names = []string{c.Leaf.Subject.CommonName}
	}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			s.wildcard[rest] = append(s.wildcard[rest], c)
		} else {
			s.exact[n] = append(s.exact[n], c)
		}
	}
	for _, ip := range c.Leaf.IPAddresses {
		s.exact[ip.String()] = append(s.exact[ip.String()], c)
	}
}

// get is tls.Config.GetCertificate.
func (s *selector) get(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name == "" && hello.Conn != nil {
		// No SNI: clients connecting by IP; match the address they reached.
		if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok {
			name = a.IP.String()
		}
	}
	if c := pick(hello, s.exact[name]); c != nil {
		return c, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		// A wildcard covers exactly one label.
		if c := pick(hello, s.wildcard[parent]); c != nil {
			return c, nil
		}
	}
	if c := pick(hello, s.all); c != nil {
		return c, nil
	}
	return s.all[0], nil
}

// pick returns the first of cs the client supports, else the first.
func pick(hello *tls.ClientHelloInfo, cs []*tls.Certificate) *tls.Certificate {
	for _, c := range cs {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	if len(cs) > 0 {
		return cs[0]
	}
	return nil
}
