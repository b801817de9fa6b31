// Package schema writes the JSON Schema (draft 2020-12) of fulcrum's config
// file from the Go types of package config, so that editors complete keys,
// show their documentation and flag mistakes as the file is typed. It also
// holds a validator for the part of JSON Schema it writes, which the tests
// run over every example and documentation snippet.
//
// The schema follows the decoder: the keys are the yaml tags, every value
// may be null (null means "left out"), unknown keys are refused except the
// x- extension keys, and the descriptions are the doc comments of the
// types' fields.
package schema

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// Draft is the JSON Schema dialect written.
const Draft = "https://json-schema.org/draft/2020-12/schema"

// ID is where the schema is published (the committed
// docs/fulcrum.schema.json).
const ID = "https://raw.githubusercontent.com/fulcrum-lb/fulcrum/main/docs/fulcrum.schema.json"

// DurationPattern matches what the decoder reads as a duration string: Go
// duration syntax without a sign. A bare integer (seconds) is allowed by
// type instead.
const DurationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// Config returns the schema of config.Config, with descriptions from docs
// (see ParseDocs), as indented JSON ending in a newline.
func Config(docs Docs) ([]byte, error) {
	return Generate(reflect.TypeFor[config.Config](), docs, config.SchemaHints())
}

// Generate returns the schema of documents decoding into root.
func Generate(root reflect.Type, docs Docs, hints config.Hints) ([]byte, error) {
	g := &generator{docs: docs, hints: hints, defs: map[string]object{}}
	top, err := g.structure(root)
	if err != nil {
		return nil, err
	}
	doc := object{
		{"$schema", Draft},
		{"$id", ID},
		{"title", "fulcrum configuration"},
		// The root type's comment speaks to Go programmers.
		{"description", "One fulcrum config file, the same on every balancer node except node.name. docs/config.md describes every key."},
	}
	for _, m := range top {
		if m.key != "description" {
			doc = append(doc, m)
		}
	}
	names := make([]string, 0, len(g.defs))
	for n := range g.defs {
		names = append(names, n)
	}
	slices.Sort(names)
	defs := object{}
	for _, n := range names {
		defs = append(defs, member{n, g.defs[n]})
	}
	doc = append(doc, member{"$defs", defs})
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type generator struct {
	docs  Docs
	hints config.Hints
	defs  map[string]object
}

var (
	durationType        = reflect.TypeFor[config.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// nullable is a type keyword that also admits null, which the decoder
// reads as "left out".
func nullable(t string) []string { return []string{t, "null"} }

// value returns the schema of a value of type t.
func (g *generator) value(t reflect.Type) (object, error) {
	switch {
	case t == durationType:
		if _, ok := g.defs["duration"]; !ok {
			g.defs["duration"] = object{
				{"description", "A Go duration (250ms, 2s, 1m30s, 1h) or a whole number of seconds; never negative."},
				{"type", []string{"string", "integer", "null"}},
				{"pattern", DurationPattern},
				{"minimum", 0},
			}
		}
		return object{{"$ref", "#/$defs/duration"}}, nil
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return object{{"type", nullable("string")}}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.value(t.Elem())
	case reflect.String:
		return object{{"type", nullable("string")}}, nil
	case reflect.Bool:
		return object{{"type", nullable("boolean")}}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return object{{"type", nullable("integer")}}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return object{{"type", nullable("integer")}, {"minimum", 0}}, nil
	case reflect.Float32, reflect.Float64:
		return object{{"type", nullable("number")}}, nil
	case reflect.Slice:
		items, err := g.value(t.Elem())
		if err != nil {
			return nil, err
		}
		return object{{"type", nullable("array")}, {"items", items}}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("schema: map key type %s is not a string", t.Key())
		}
		elem, err := g.value(t.Elem())
		if err != nil {
			return nil, err
		}
		return object{{"type", nullable("object")}, {"additionalProperties", elem}}, nil
	case reflect.Struct:
		name := t.Name()
		if name == "" {
			return nil, fmt.Errorf("schema: anonymous struct %s needs a named type", t)
		}
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = nil // reserved: a type may contain itself
			def, err := g.structure(t)
			if err != nil {
				return nil, err
			}
			g.defs[name] = def
		}
		return object{{"$ref", "#/$defs/" + name}}, nil
	}
	return nil, fmt.Errorf("schema: type %s is not supported", t)
}

// structure returns the schema of a mapping decoding into the struct t.
func (g *generator) structure(t reflect.Type) (object, error) {
	props := object{}
	for _, f := range config.Fields(t) {
		sf := t.FieldByIndex(f.Index)
		owner := t
		if len(f.Index) > 1 {
			owner = t.FieldByIndex(f.Index[:len(f.Index)-1]).Type
		}
		key := owner.Name() + "." + f.Key
		v, err := g.value(sf.Type)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		target := v // where enums and patterns go: the items of a list
		if sf.Type.Kind() == reflect.Slice {
			target = v.get("items").(object)
		}
		if vals, ok := g.hints.Enums[key]; ok {
			enum := make([]any, 0, len(vals)+1)
			for _, s := range vals {
				enum = append(enum, s)
			}
			target = target.set("enum", append(enum, nil))
		}
		if p, ok := g.hints.Patterns[key]; ok {
			target = target.set("pattern", p)
		}
		if sf.Type.Kind() == reflect.Slice {
			v = v.set("items", target)
		} else {
			v = target
		}
		if d := g.docs.field(owner.Name(), sf.Name, f.Key); d != "" {
			v = append(object{{"description", d}}, v...)
		}
		props = append(props, member{f.Key, v})
	}
	out := object{}
	if d := g.docs[t.Name()]; d != "" {
		out = append(out, member{"description", d})
	}
	out = append(out,
		member{"type", nullable("object")},
		member{"properties", props},
		member{"patternProperties", object{{"^" + config.ExtensionPrefix, object{}}}},
		member{"additionalProperties", false},
	)
	if req := g.hints.Required[t.Name()]; len(req) > 0 {
		for _, r := range req {
			if props.get(r) == nil {
				return nil, fmt.Errorf("schema: %s requires key %q, which it does not have", t.Name(), r)
			}
		}
		out = append(out, member{"required", req})
	}
	if exs := g.hints.Exclusions[t.Name()]; len(exs) > 0 {
		var all []object
		for _, ex := range exs {
			forbidden := object{}
			for _, k := range ex.Keys {
				if props.get(k) == nil {
					return nil, fmt.Errorf("schema: %s excludes key %q, which it does not have", t.Name(), k)
				}
				forbidden = append(forbidden, member{k, false})
			}
			all = append(all, object{
				{"if", object{{"properties", object{{ex.Key, object{{"const", ex.Value}}}}}, {"required", []string{ex.Key}}}},
				{"then", object{{"description", ex.Why}, {"properties", forbidden}}},
			})
		}
		out = append(out, member{"allOf", all})
	}
	return out, nil
}

// object is a JSON object that keeps its keys in the order written, so
// that the schema lists keys as the types declare them.
type object []member

type member struct {
	key string
	val any
}

func (o object) get(key string) any {
	for _, m := range o {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// set returns o with key set to val, replacing an existing value in place.
func (o object) set(key string, val any) object {
	out := slices.Clone(o)
	for i := range out {
		if out[i].key == key {
			out[i].val = val
			return out
		}
	}
	return append(out, member{key, val})
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.val)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// String is for messages.
func (o object) String() string {
	b, _ := o.MarshalJSON()
	return strings.TrimSpace(string(b))
}
