package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes, defaults and validates the config file at path.
// Problems in the file are returned together as Errors.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for data already read; file names it in errors.
//
// Decoding is strict: unknown keys, duplicate keys, values of the wrong
// type and more than one YAML document are errors. Every problem, from
// decoding and from Validate, is returned together as Errors sorted by
// position; the *Config is returned only when there is none.
func Parse(file string, data []byte) (*Config, error) {
	c := &Config{}
	d := newDecoder(file)
	d.document(data, c)
	c.File = file
	c.pos = d.pos
	c.applyDefaults()
	errs := d.errs
	for _, e := range c.check() {
		if !d.suppressed(e.Field) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	return c, nil
}

// Pos returns where the value at path (e.g. "services[0].backends[1].weight")
// starts in the file. When that value is not in the file (it was omitted and
// took a default), it returns the position of the nearest enclosing value
// that is; 0, 0 when there is none, as for a Config built in code.
func (c *Config) Pos(path string) (line, col int) {
	for {
		if p, ok := c.pos[path]; ok {
			return p.line, p.col
		}
		if path == "" {
			return 0, 0
		}
		path = parentPath(path)
	}
}

// given reports whether the file gave a value at path, so that a zero the
// user wrote (netmask: 0) is kept while an omitted value takes its default.
func (c *Config) given(path string) bool {
	_, ok := c.pos[path]
	return ok
}

// Service returns the service called name, or nil.
func (c *Config) Service(name string) *Service {
	for i := range c.Services {
		if c.Services[i].Name == name {
			return &c.Services[i]
		}
	}
	return nil
}

// Marshal returns c as YAML. For a config from Load this is the effective
// configuration, defaults included, and Parse reads it back to an equal
// Config.
func (c *Config) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: marshal: %w", err)
	}
	return b.Bytes(), nil
}

// Hash is the hex SHA-256 of the effective configuration and of the
// content of the files its http blocks name (error pages, certificates),
// leaving out what is meant to differ between the nodes of a cluster:
// node.name, each HA group's unicast_peers (every node lists the
// others), and the director's interfaces, tunnel_source, sync.listen and
// sync.peers. Two nodes whose files differ only in layout, comments,
// spelled-out defaults or those settings have the same hash; peers compare
// it (docs/operations.md).
func (c *Config) Hash() string {
	shared := *c
	shared.Node.Name = ""
	shared.HA.Groups = slices.Clone(c.HA.Groups)
	for i := range shared.HA.Groups {
		shared.HA.Groups[i].UnicastPeers = nil
	}
	// The director's interfaces, addresses and peers are the node's own.
	shared.Director.Interfaces = nil
	shared.Director.TunnelSource = ""
	shared.Director.Sync.Listen = ""
	shared.Director.Sync.Peers = nil
	// The proxy, the default, is left out, so that a config written
	// before forwarding existed keeps the hash it had: nodes of two
	// versions in one rolling upgrade still agree.
	shared.Services = slices.Clone(c.Services)
	for i := range shared.Services {
		if shared.Services[i].Forwarding == ForwardProxy {
			shared.Services[i].Forwarding = ""
		}
	}
	b, err := shared.Marshal()
	if err != nil {
		// Every schema type encodes; failing here is a programming error.
		panic(err)
	}
	h := sha256.New()
	h.Write(b)
	// The files an http block names are part of what runs: a renewed
	// certificate or an edited error page changes the hash too.
	for i := range c.Services {
		hc := c.Services[i].HTTP
		if hc == nil {
			continue
		}
		for _, code := range slices.Sorted(maps.Keys(hc.ErrorBodies)) {
			fmt.Fprintf(h, "\x00error_page %d %d\x00", code, len(hc.ErrorBodies[code]))
			h.Write(hc.ErrorBodies[code])
		}
		if hc.TLS != nil {
			for _, crt := range hc.TLS.Certificates {
				fmt.Fprintf(h, "\x00certificate %d %d\x00", len(crt.CertPEM), len(crt.KeyPEM))
				h.Write(crt.CertPEM)
				h.Write(crt.KeyPEM)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
