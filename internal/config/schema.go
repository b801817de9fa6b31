package config

import (
	"reflect"

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
