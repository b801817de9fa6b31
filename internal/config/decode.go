package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Bounds on the values one document may expand to. Aliases let a few lines
// name the same subtree again and again ("billion laughs"), so values
// reached through an alias have a budget of their own; a real config, even
// one sharing a pool of backends among many services, stays far below it.
// The overall bound only matters for files of many megabytes.
const (
	maxVisits      = 1 << 20
	maxAliasVisits = 1 << 17
)

// extensionPrefix starts keys the decoder ignores, as in Docker Compose
// files: they give anchors a home ("x-backends: &pool [...]") without
// loosening the check for misspelt keys.
const extensionPrefix = "x-"

// position is where a value starts in the file.
type position struct{ line, col int }

// decoder walks a yaml.Node tree into Go values by reflection over the
// yaml struct tags. It is generic on purpose: adding a field of a
// supported type to the schema needs no change here.
//
// Supported: string, bool, integer and float kinds, Duration, types whose
// pointer implements encoding.TextUnmarshaler, pointers, slices, structs
// (with ",inline" embedding) and maps with string keys.
type decoder struct {
	file string
	errs Errors
	// seen drops repeats of the same problem, which an alias used in
	// several places would otherwise report once per use.
	seen map[errKey]bool
	// pos records where each value given in the file starts, by field path.
	pos map[string]position
	// failed holds paths whose value could not be decoded; validation stays
	// quiet about them and what they contain, since it would only repeat
	// the problem.
	failed map[string]bool
	// visits and aliasVisits count values walked, in all and through an
	// alias; exhausted is set once either passes its bound.
	visits, aliasVisits int
	exhausted           bool
	// expanding holds the aliases being walked, to catch an alias that
	// refers to a value containing it.
	expanding map[*yaml.Node]bool
}

type errKey struct {
	line, col int
	msg       string
}

func newDecoder(file string) *decoder {
	return &decoder{
		file:      file,
		seen:      map[errKey]bool{},
		pos:       map[string]position{},
		failed:    map[string]bool{},
		expanding: map[*yaml.Node]bool{},
	}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.file, Field: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	k := errKey{e.Line, e.Column, e.Msg}
	if d.seen[k] {
		return
	}
	d.seen[k] = true
	d.errs = append(d.errs, e)
}

// fail reports a value that could not be decoded.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errorf(n, path, format, args...)
	d.failed[path] = true
}

// suppressed reports whether a validation error at path concerns a value
// that already failed to decode.
func (d *decoder) suppressed(path string) bool {
	for {
		if d.failed[path] {
			return true
		}
		if path == "" {
			return false
		}
		path = parentPath(path)
	}
}

// visit counts n against the bounds and reports whether walking may go on.
// Past a bound the config is incomplete, so validation is skipped.
func (d *decoder) visit(n *yaml.Node, path string) bool {
	if d.exhausted {
		return false
	}
	d.visits++
	if len(d.expanding) > 0 {
		d.aliasVisits++
	}
	switch {
	case d.visits > maxVisits:
		d.errorf(n, path, "document has more than %d values", maxVisits)
	case d.aliasVisits > maxAliasVisits:
		d.errorf(n, path, "aliases expand to more than %d values; use fewer or smaller ones", maxAliasVisits)
	default:
		return true
	}
	d.exhausted = true
	d.failed[""] = true
	return false
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parserProblems are the messages of yaml.v3's parser, as opposed to its
// scanner. yaml.v3 reports a 0-based line for these (the line where the
// unfinished collection starts, or else where the problem is) and a 1-based
// one for the scanner's.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// syntax reports an error of the YAML parser, which gives only a line.
func (d *decoder) syntax(err error) {
	e := &Error{File: d.file}
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserProblems[msg] {
			e.Line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e.Msg = "invalid YAML: " + msg
	d.errs = append(d.errs, e)
	d.failed[""] = true
}

// document decodes data, which must hold at most one YAML document, into
// out. An empty document leaves out untouched.
func (d *decoder) document(data []byte, out any) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			d.syntax(err)
		}
		return
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		d.fail(&next, "", "found a second YAML document; want exactly one")
	case !errors.Is(err, io.EOF):
		d.syntax(err)
		return
	}
	root := &doc
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return
		}
		root = doc.Content[0]
	}
	d.value(root, reflect.ValueOf(out).Elem(), "")
}

// value decodes n into v. A null leaves v as it is, so that an empty key
// means the same as an absent one.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if !d.visit(n, path) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if d.expanding[n] {
			d.fail(n, path, "alias *%s refers to a value that contains it", n.Value)
			return
		}
		d.expanding[n] = true
		d.value(n.Alias, v, path)
		delete(d.expanding, n)
		return
	}
	if isNull(n) {
		return
	}
	if path != "" {
		d.pos[path] = position{n.Line, n.Column}
	}
	d.into(n, v, path)
}

var (
	durationType        = reflect.TypeFor[Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// into decodes the non-null, non-alias node n into v.
func (d *decoder) into(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	switch {
	case t == durationType:
		d.duration(n, v, path)
		return
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a single value, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.fail(n, path, "invalid value %s: %v", describe(n), err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.into(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		d.list(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a string, got %s", describe(n))
			return
		}
		if n.ShortTag() == "!!binary" {
			// How yaml.v3 writes a string that is not valid UTF-8, so
			// Marshal's output reads back unchanged.
			var s string
			if err := n.Decode(&s); err != nil {
				d.fail(n, path, "invalid !!binary value: %v", err)
				return
			}
			v.SetString(s)
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.ShortTag() != "!!int" {
			d.fail(n, path, "want an integer, got %s", describe(n))
			return
		}
		if n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var u uint64
		if n.ShortTag() != "!!int" || strings.HasPrefix(n.Value, "-") {
			d.fail(n, path, "want a non-negative integer, got %s", describe(n))
			return
		}
		if n.Decode(&u) != nil || v.OverflowUint(u) {
			d.fail(n, path, "integer %s is out of range", n.Value)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		var f float64
		if tag := n.ShortTag(); (tag != "!!float" && tag != "!!int") || n.Decode(&f) != nil {
			d.fail(n, path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "internal error: the schema uses type %s, which the decoder does not support", t)
	}
}

// duration reads a Go duration string ("250ms", "1h30m") or a bare integer
// number of seconds, as in ipvsadm and ldirectord configs.
func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	var dur time.Duration
	switch n.ShortTag() {
	case "!!int":
		var secs int64
		if err := n.Decode(&secs); err != nil || secs > math.MaxInt64/int64(time.Second) {
			d.fail(n, path, "duration %s is out of range", describe(n))
			return
		}
		dur = time.Duration(secs) * time.Second
	case "!!str":
		var err error
		if dur, err = time.ParseDuration(n.Value); err != nil {
			d.fail(n, path, "want a duration like 2s, got %s", describe(n))
			return
		}
	default:
		d.fail(n, path, "want a duration like 2s, got %s", describe(n))
		return
	}
	if dur < 0 {
		d.fail(n, path, "want a non-negative duration, got %s", describe(n))
		return
	}
	v.SetInt(int64(dur))
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	for _, p := range d.pairs(n, path) {
		if strings.HasPrefix(p.key, extensionPrefix) {
			continue
		}
		f, ok := fields.byName[p.key]
		if !ok {
			if s := suggest(p.key, fields.names); s != "" {
				d.errorf(p.keyNode, path, "unknown field %q, did you mean %q?", p.key, s)
			} else {
				d.errorf(p.keyNode, path, "unknown field %q; known fields: %s", p.key, strings.Join(fields.names, ", "))
			}
			continue
		}
		d.value(p.val, v.FieldByIndex(f), joinField(path, p.key))
	}
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, c := range n.Content {
		d.value(c, s.Index(i), path+"["+strconv.Itoa(i)+"]")
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "internal error: the schema uses type %s, which the decoder does not support", t)
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMap(t)
	for _, p := range d.pairs(n, path) {
		e := reflect.New(t.Elem()).Elem()
		d.value(p.val, e, joinKey(path, p.key))
		m.SetMapIndex(reflect.ValueOf(p.key).Convert(t.Key()), e)
	}
	v.Set(m)
}

// pair is one entry of a YAML mapping.
type pair struct {
	key          string
	keyNode, val *yaml.Node
}

// pairs lists the entries of the mapping n, rejecting duplicate keys and
// expanding merge keys (<<: *defaults): keys written in n win over merged
// ones, and an earlier merged mapping wins over a later one.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var out []pair
	first := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.visit(k, path) {
			return out
		}
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		kn := k
		if kn.Kind == yaml.AliasNode {
			kn = kn.Alias
		}
		if kn.Kind != yaml.ScalarNode {
			d.errorf(k, path, "want a key, got %s", describe(k))
			continue
		}
		if f, dup := first[kn.Value]; dup {
			d.errorf(k, joinKey(path, kn.Value), "duplicate key, first at line %d", f.Line)
			continue
		}
		first[kn.Value] = k
		out = append(out, pair{kn.Value, k, val})
	}
	for _, m := range merges {
		for _, p := range d.merged(m, path, true) {
			if _, ok := first[p.key]; !ok {
				first[p.key] = p.keyNode
				out = append(out, p)
			}
		}
	}
	return out
}

// merged returns the entries a merge key's value m brings in: a mapping, or
// when list is true a list of mappings; aliases to either are followed.
func (d *decoder) merged(m *yaml.Node, path string, list bool) []pair {
	if !d.visit(m, path) {
		return nil
	}
	switch m.Kind {
	case yaml.AliasNode:
		if d.expanding[m] {
			d.fail(m, path, "alias *%s refers to a value that contains it", m.Value)
			return nil
		}
		d.expanding[m] = true
		defer delete(d.expanding, m)
		return d.merged(m.Alias, path, list)
	case yaml.MappingNode:
		return d.pairs(m, path)
	case yaml.SequenceNode:
		if list {
			var out []pair
			for _, e := range m.Content {
				out = append(out, d.merged(e, path, false)...)
			}
			return out
		}
	}
	d.fail(m, path, "merge (<<) wants a mapping or a list of mappings, got %s", describe(m))
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what the user wrote, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			return describe(n.Alias)
		}
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "null"
		}
		v := n.Value
		if r := []rune(v); len(r) > 40 {
			v = string(r[:40]) + "..."
		}
		return strconv.Quote(v)
	}
	return "nothing"
}

// joinField appends a struct field's key to path.
func joinField(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinKey appends a map key to path, quoting it when it could be confused
// with path syntax.
func joinKey(path, key string) string {
	if plainKeyRE.MatchString(key) {
		return joinField(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// parentPath strips the last element of a field path:
// services[0].backends[1] → services[0].backends → services[0] → services → "".
func parentPath(p string) string {
	cut, quoted := 0, false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			cut = i
		}
	}
	return p[:cut]
}

// structFields is what the decoder needs to know of a struct type.
type structFields struct {
	byName map[string][]int // yaml key → field index path
	names  []string         // keys in declaration order, for messages
}

var fieldCache sync.Map // reflect.Type → *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	fs := &structFields{byName: map[string][]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if sf.Type.Kind() == reflect.Struct && hasOpt(opts, "inline") {
			inner := fieldsOf(sf.Type)
			for _, n := range inner.names {
				fs.add(n, append([]int{i}, inner.byName[n]...))
			}
			continue
		}
		if name == "" {
			// yaml.v3's own default, so Marshal and the decoder agree.
			name = strings.ToLower(sf.Name)
		}
		fs.add(name, []int{i})
	}
	f, _ := fieldCache.LoadOrStore(t, fs)
	return f.(*structFields)
}

func (fs *structFields) add(name string, index []int) {
	if _, dup := fs.byName[name]; dup {
		panic("config: schema declares yaml key " + strconv.Quote(name) + " twice")
	}
	fs.byName[name] = index
	fs.names = append(fs.names, name)
}

func hasOpt(opts, want string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}
