package config

import (
	"fmt"
	"reflect"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/fulcrum-lb/fulcrum/internal/health"
)

// The methods below shape Marshal's output (the effective config) where
// printing every field as it is would not read back to the same config.

// MarshalYAML leaves out the keys of other check types that are unset:
// they mean nothing here, and a file that gives them to another type is
// refused. A key that is set stays, since a backend switching the
// type inherits it.
func (h Health) MarshalYAML() (any, error) {
	type plain Health // without this method
	if h.Type == "" {
		return plain(h), nil
	}
	var n yaml.Node
	if err := n.Encode(plain(h)); err != nil {
		return nil, err
	}
	v := reflect.ValueOf(h)
	fs := fieldsOf(v.Type())
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		if foreignCheckKey(h.Type, key) && v.FieldByIndex(fs.byName[key]).IsZero() {
			continue
		}
		kept = append(kept, n.Content[i], n.Content[i+1])
	}
	n.Content = kept
	return &n, nil
}

// foreignCheckKey reports whether key belongs to check types other than typ.
func foreignCheckKey(typ, key string) bool {
	owners := health.Owners(key)
	return len(owners) > 0 && !slices.Contains(owners, typ)
}

// MarshalYAML writes a backend's health block as the keys it overrides:
// a zero value there inherits the service's (see Health.overlay), so
// writing zeros out would only mislead.
func (b Backend) MarshalYAML() (any, error) {
	type plain Backend // without this method
	if b.Health == nil {
		return plain(b), nil
	}
	p := plain(b)
	p.Health = nil
	var n yaml.Node
	if err := n.Encode(p); err != nil {
		return nil, err
	}
	h, err := nonZeroFields(reflect.ValueOf(*b.Health))
	if err != nil {
		return nil, err
	}
	// health is the last key Backend declares, so the order is kept.
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "health"}, h)
	return &n, nil
}

// proxyKeys are the keys of a service that only the proxy has; a director
// service leaves them unset, and Validate refuses them when given.
var proxyKeys = []string{"retries", "timeouts", "proxy_protocol", "max_sessions", "max_sessions_per_client", "slow_start"}

// MarshalYAML leaves the proxy's keys out of a director service (forwarding
// direct or tunnel): they are unset, and written out as zeros they would
// read back as given.
func (s Service) MarshalYAML() (any, error) {
	type plain Service // without this method
	if !s.InKernel() {
		return plain(s), nil
	}
	var n yaml.Node
	if err := n.Encode(plain(s)); err != nil {
		return nil, err
	}
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !slices.Contains(proxyKeys, n.Content[i].Value) {
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
	}
	n.Content = kept
	return &n, nil
}

// nonZeroFields encodes the fields of the struct v that are not zero, in
// declaration order, under their yaml keys.
func nonZeroFields(v reflect.Value) (*yaml.Node, error) {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	fs := fieldsOf(v.Type())
	for _, name := range fs.names {
		f := v.FieldByIndex(fs.byName[name])
		if f.IsZero() {
			continue
		}
		var val yaml.Node
		if err := val.Encode(f.Interface()); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}, &val)
	}
	return n, nil
}
