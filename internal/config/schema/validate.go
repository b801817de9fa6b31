package schema

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Validator checks documents against a JSON Schema that uses only the
// keywords Generate writes. Compile refuses a schema with any other
// keyword, so that a check the validator cannot do is never skipped in
// silence.
type Validator struct {
	root     map[string]any
	patterns map[string]*regexp.Regexp
}

// known are the keywords the validator implements; annotations (title,
// description, ...) have no effect on validity.
var known = map[string]bool{
	"$schema": true, "$id": true, "title": true, "description": true, "$defs": true,
	"$ref": true, "type": true, "enum": true, "pattern": true, "minimum": true, "maximum": true,
	"properties": true, "patternProperties": true, "additionalProperties": true,
	"required": true, "items": true, "allOf": true, "if": true, "then": true, "const": true,
}

// Compile reads a schema.
func Compile(data []byte) (*Validator, error) {
	var root map[string]any
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	v := &Validator{root: root, patterns: map[string]*regexp.Regexp{}}
	if err := v.compile(root, "#"); err != nil {
		return nil, err
	}
	return v, nil
}

// compile checks every keyword of the schema s at ptr and compiles its
// patterns.
func (v *Validator) compile(s map[string]any, ptr string) error {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			return fmt.Errorf("schema: %s: keyword %q is not supported by this validator", ptr, k)
		}
		val := s[k]
		sub := ptr + "/" + k
		switch k {
		case "$defs", "properties", "patternProperties":
			m, ok := val.(map[string]any)
			if !ok {
				return fmt.Errorf("schema: %s: want an object", sub)
			}
			for name, def := range m {
				if _, ok := def.(bool); ok && k == "properties" {
					continue // true: anything; false: the key is not allowed
				}
				d, ok := def.(map[string]any)
				if !ok {
					return fmt.Errorf("schema: %s/%s: want a schema object", sub, name)
				}
				if k == "patternProperties" {
					if err := v.addPattern(name, sub); err != nil {
						return err
					}
				}
				if err := v.compile(d, sub+"/"+name); err != nil {
					return err
				}
			}
		case "items", "additionalProperties":
			switch d := val.(type) {
			case map[string]any:
				if err := v.compile(d, sub); err != nil {
					return err
				}
			case bool:
				if k == "items" {
					return fmt.Errorf("schema: %s: want a schema object", sub)
				}
			default:
				return fmt.Errorf("schema: %s: want a schema object or a boolean", sub)
			}
		case "allOf":
			list, ok := val.([]any)
			if !ok {
				return fmt.Errorf("schema: %s: want a list of schemas", sub)
			}
			for i, e := range list {
				d, ok := e.(map[string]any)
				if !ok {
					return fmt.Errorf("schema: %s/%d: want a schema object", sub, i)
				}
				if err := v.compile(d, sub+"/"+strconv.Itoa(i)); err != nil {
					return err
				}
			}
		case "if", "then":
			d, ok := val.(map[string]any)
			if !ok {
				return fmt.Errorf("schema: %s: want a schema object", sub)
			}
			if err := v.compile(d, sub); err != nil {
				return err
			}
		case "pattern":
			p, ok := val.(string)
			if !ok {
				return fmt.Errorf("schema: %s: want a string", sub)
			}
			if err := v.addPattern(p, sub); err != nil {
				return err
			}
		case "$ref":
			r, ok := val.(string)
			if !ok {
				return fmt.Errorf("schema: %s: want a string", sub)
			}
			if _, err := v.resolve(r); err != nil {
				return fmt.Errorf("schema: %s: %w", sub, err)
			}
		}
	}
	return nil
}

func (v *Validator) addPattern(p, ptr string) error {
	re, err := regexp.Compile(p)
	if err != nil {
		return fmt.Errorf("schema: %s: pattern %q: %w", ptr, p, err)
	}
	v.patterns[p] = re
	return nil
}

// resolve follows a local reference, "#/$defs/Name".
func (v *Validator) resolve(ref string) (map[string]any, error) {
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		return nil, fmt.Errorf("$ref %q: only #/$defs/NAME is supported", ref)
	}
	defs, _ := v.root["$defs"].(map[string]any)
	d, ok := defs[name].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %q: no such definition", ref)
	}
	return d, nil
}

// ValidateYAML decodes one YAML document and validates it. The first
// error is about reading YAML; the list holds every schema violation.
func (v *Validator) ValidateYAML(data []byte) ([]error, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	return v.Validate(doc), nil
}

// Validate checks a decoded document (maps, slices, strings, numbers,
// booleans and nil, as encoding/json or yaml.v3 produce) and returns every
// violation, each naming the path as config errors do
// (services[0].backends[1].weight).
func (v *Validator) Validate(doc any) []error {
	var errs []error
	v.check(v.root, doc, "", &errs)
	return errs
}

func (v *Validator) check(s map[string]any, val any, path string, errs *[]error) {
	fail := func(format string, args ...any) {
		p := path
		if p == "" {
			p = "(document)"
		}
		*errs = append(*errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
	}
	if r, ok := s["$ref"].(string); ok {
		d, err := v.resolve(r)
		if err != nil {
			fail("%v", err)
			return
		}
		v.check(d, val, path, errs)
	}
	if t, ok := s["type"]; ok && !typeMatches(t, val) {
		fail("want %s, got %s", typeNames(t), describe(val))
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return equal(e, val) }) {
		fail("%s is not one of %s", describe(val), enumNames(enum))
	}
	if c, ok := s["const"]; ok && !equal(c, val) {
		fail("want %s, got %s", describe(c), describe(val))
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, e := range all {
			v.check(e.(map[string]any), val, path, errs)
		}
	}
	if cond, ok := s["if"].(map[string]any); ok {
		var scratch []error
		if v.check(cond, val, path, &scratch); len(scratch) == 0 {
			if then, ok := s["then"].(map[string]any); ok {
				v.check(then, val, path, errs)
			}
		}
	}
	if str, ok := val.(string); ok {
		if p, ok := s["pattern"].(string); ok && !v.patterns[p].MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	}
	if n, ok := number(val); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v is below the minimum %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v is above the maximum %v", n, m)
		}
	}
	switch val := val.(type) {
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, e := range val {
				v.check(items, e, path+"["+strconv.Itoa(i)+"]", errs)
			}
		}
	case map[string]any:
		v.object(s, val, path, errs, fail)
	case map[any]any:
		m := make(map[string]any, len(val))
		for k, e := range val {
			m[fmt.Sprint(k)] = e
		}
		v.object(s, m, path, errs, fail)
	}
}

func (v *Validator) object(s map[string]any, val map[string]any, path string, errs *[]error, fail func(string, ...any)) {
	props, _ := s["properties"].(map[string]any)
	pats, _ := s["patternProperties"].(map[string]any)
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if _, ok := val[r.(string)]; !ok {
				fail("missing required key %q", r)
			}
		}
	}
	keys := make([]string, 0, len(val))
	for k := range val {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		sub := k
		if path != "" {
			sub = path + "." + k
		}
		matched := false
		if allowed, ok := props[k].(bool); ok {
			if !allowed {
				why := ""
				if d, ok := s["description"].(string); ok {
					why = " (" + d + ")"
				}
				*errs = append(*errs, fmt.Errorf("%s: not allowed here%s", sub, why))
			}
			continue
		}
		if p, ok := props[k].(map[string]any); ok {
			matched = true
			v.check(p, val[k], sub, errs)
		}
		for pat, ps := range pats {
			if v.patterns[pat].MatchString(k) {
				matched = true
				v.check(ps.(map[string]any), val[k], sub, errs)
			}
		}
		if matched {
			continue
		}
		switch ap := s["additionalProperties"].(type) {
		case bool:
			if !ap {
				known := make([]string, 0, len(props))
				for name := range props {
					known = append(known, name)
				}
				sort.Strings(known)
				fail("unknown key %q; known keys: %s", k, strings.Join(known, ", "))
			}
		case map[string]any:
			v.check(ap, val[k], sub, errs)
		}
	}
}

// typeMatches implements "type": one name or a list of names.
func typeMatches(t, val any) bool {
	switch t := t.(type) {
	case string:
		return isType(t, val)
	case []any:
		for _, n := range t {
			if s, ok := n.(string); ok && isType(s, val) {
				return true
			}
		}
	}
	return false
}

func isType(name string, val any) bool {
	switch name {
	case "null":
		return val == nil
	case "boolean":
		_, ok := val.(bool)
		return ok
	case "string":
		_, ok := val.(string)
		return ok
	case "number":
		_, ok := number(val)
		return ok
	case "integer":
		n, ok := number(val)
		return ok && n == math.Trunc(n) && !math.IsInf(n, 0)
	case "array":
		_, ok := val.([]any)
		return ok
	case "object":
		switch val.(type) {
		case map[string]any, map[any]any:
			return true
		}
	}
	return false
}

func number(val any) (float64, bool) {
	switch n := val.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// equal compares an enum value from the schema (decoded JSON) with a
// document value.
func equal(e, val any) bool {
	if a, ok := number(e); ok {
		b, ok := number(val)
		return ok && a == b
	}
	return e == val
}

func typeNames(t any) string {
	switch t := t.(type) {
	case string:
		return t
	case []any:
		var names []string
		for _, n := range t {
			names = append(names, fmt.Sprint(n))
		}
		return strings.Join(names, " or ")
	}
	return fmt.Sprint(t)
}

func enumNames(enum []any) string {
	var names []string
	for _, e := range enum {
		if e == nil {
			continue // null is always allowed; not worth listing
		}
		names = append(names, strconv.Quote(fmt.Sprint(e)))
	}
	return strings.Join(names, ", ")
}

func describe(val any) string {
	switch val := val.(type) {
	case nil:
		return "null"
	case string:
		return "the string " + strconv.Quote(val)
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	if _, ok := number(val); ok {
		return fmt.Sprintf("the number %v", val)
	}
	return fmt.Sprintf("%T", val)
}
