package health

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Type is one kind of active check, registered once from the file that
// implements it (tcp.go, http.go, udp.go, exec.go). Everything that
// differs between check types is here: the config package reads Keys,
// Defaults and Validate to check a file, the JSON Schema lists the names,
// and NewChecker calls New. A new type is one more registration.
type Type struct {
	// Name is the value of the config's health.type.
	Name string
	// Keys are the config keys this type reads besides the common ones
	// (interval, timeout, rise, fall, jitter, initial, address, port,
	// passive). A key of another type given to this one is an error.
	Keys []string
	// Defaults are the values of some Keys when the config leaves them
	// out, as the config's Go types hold them (string, []string).
	Defaults map[string]any
	// Validate reports every problem of the type's keys in s. It may
	// assume the common keys are valid.
	Validate func(s *Spec) []FieldError
	// New builds the checker of a spec Validate accepted.
	New func(s Spec) (Checker, error)
	// PerBackend is set when the checker reads Target.Backend and
	// Target.Service (exec hands them to its command): watches of
	// different backends then never share a probe, even at one address.
	PerBackend bool
}

// FieldError is a problem of one key of a spec.
type FieldError struct {
	Key string // the config key: "path", "expect_status"
	Msg string // "want a path starting with /, got \"x\""
}

func (e FieldError) Error() string { return e.Key + ": " + e.Msg }

var registry = map[string]*Type{}

// register is called from each type's file at init.
func register(t Type) {
	if _, dup := registry[t.Name]; dup {
		panic("health: duplicate registration of check type " + t.Name)
	}
	if t.Validate == nil || t.New == nil {
		panic("health: check type " + t.Name + " lacks Validate or New")
	}
	for k := range t.Defaults {
		if !slices.Contains(t.Keys, k) {
			panic("health: check type " + t.Name + " defaults key " + k + " it does not have")
		}
	}
	registry[t.Name] = &t
}

// Types lists the names of every registered check type, sorted.
func Types() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the check type called name, or nil.
func Lookup(name string) *Type { return registry[name] }

// TypeKeys lists every key that belongs to some check types only, sorted.
func TypeKeys() []string {
	var keys []string
	for _, t := range registry {
		for _, k := range t.Keys {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// Owners lists the check types that read key, sorted; nil for a common
// key (or one no type has).
func Owners(key string) []string {
	var out []string
	for _, n := range Types() {
		if slices.Contains(registry[n].Keys, key) {
			out = append(out, n)
		}
	}
	return out
}

// Validate reports every problem of s, each by config key: the common
// keys, then the type's own.
func Validate(s Spec) []FieldError {
	errs := s.validateCommon()
	t := registry[s.Type]
	if t == nil {
		return append(errs, FieldError{"type", fmt.Sprintf("unknown value %q; want %s", s.Type, orList(Types()))})
	}
	return append(errs, t.Validate(&s)...)
}

// NewChecker returns the checker for s, or every reason s cannot be run.
func NewChecker(s Spec) (Checker, error) {
	if fes := Validate(s); len(fes) > 0 {
		errs := make([]error, len(fes))
		for i, fe := range fes {
			errs[i] = fe
		}
		return nil, errors.Join(errs...)
	}
	return registry[s.Type].New(s)
}

// orList quotes items and joins them as `"a", "b" or "c"`.
func orList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}
