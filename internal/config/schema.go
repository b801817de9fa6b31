package config

import (
	"reflect"
	"slices"

	"github.com/fulcrum-lb/fulcrum/internal/health"
	"github.com/fulcrum-lb/fulcrum/internal/sched"
)

// docs/fulcrum.schema.json, the JSON Schema editors use to complete and
// check a config file, is generated from the types of this package (their
// yaml tags and doc comments) by internal/config/schema; regenerate it after
// changing a type with:
//
//go:generate go run ./schemagen -o ../../docs/fulcrum.schema.json

// Hints is what the JSON Schema says beyond the Go types, each by
// "Type.key" (the Go type's name, then the yaml key).
type Hints struct {
	// Enums are the values of keys that take one of a fixed set (for a
	// list, of its items).
	Enums map[string][]string
	// Patterns are regular expressions a string key must match.
	Patterns map[string]string
	// Required are the keys a mapping must have, by type name.
	Required map[string][]string
	// Exclusions are keys a mapping must not have while one of its keys
	// holds a given value, by type name.
	Exclusions map[string][]Exclusion
}

// Exclusion forbids Keys while Key is given as Value: a health check's
// keys of other check types.
type Exclusion struct {
	Key, Value string
	Keys       []string
	Why        string // for the schema's description of the rule
}

// healthExclusions forbids each check type the keys of the others, as
// validation does. A block without type (a backend's override, or the
// default tcp) is left to validation: a backend inherits its type.
func healthExclusions() []Exclusion {
	var out []Exclusion
	for _, name := range health.Types() {
		t := health.Lookup(name)
		var keys []string
		for _, k := range health.TypeKeys() {
			if !slices.Contains(t.Keys, k) {
				keys = append(keys, k)
			}
		}
		out = append(out, Exclusion{Key: "type", Value: name, Keys: keys,
			Why: "keys of other check types than " + name})
	}
	return out
}

// SchemaHints returns the Hints of this package's types. Validation uses
// the same lists, so the schema cannot drift from it. A new key with a
// fixed set of values, a pattern or a required presence belongs here too.
func SchemaHints() Hints {
	name := nameRE.String()
	return Hints{
		Enums: map[string][]string{
			"Log.level":          logLevels,
			"Log.format":         logFormats,
			"Service.protocol":   protocols,
			"Service.forwarding": ForwardingSpellings(),
			"Director.xdp_mode":  xdpModes,
			"Service.scheduler":  sched.Names(),
			"ProxyProtocol.send": proxySends,
			"Health.type":        health.Types(),
			"Health.initial":     healthInitials,
			"Alert.events":       alertEvents,
		},
		Patterns: map[string]string{
			"Node.name":    name,
			"Service.name": name,
			"HAGroup.name": name,
		},
		Required: map[string][]string{
			"Config":      {"services"},
			"Service":     {"name", "listen", "backends"},
			"Backend":     {"address"},
			"HAGroup":     {"name", "interface", "vrid", "vips", "priority"},
			"SyncGroup":   {"name", "groups"},
			"TrackScript": {"command"},
		},
		Exclusions: map[string][]Exclusion{
			"Health": healthExclusions(),
		},
	}
}

// Field is one key of a struct type as the decoder reads it.
type Field struct {
	Key   string
	Index []int // for reflect.Type.FieldByIndex
}

// Fields lists the keys of the struct type t in declaration order, with
// ",inline" structs flattened, exactly as the decoder matches them.
func Fields(t reflect.Type) []Field {
	fs := fieldsOf(t)
	out := make([]Field, len(fs.names))
	for i, n := range fs.names {
		out[i] = Field{Key: n, Index: fs.byName[n]}
	}
	return out
}

// ExtensionPrefix starts the keys the decoder ignores in every mapping.
const ExtensionPrefix = extensionPrefix
