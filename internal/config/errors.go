package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a config file, located by line, column and the
// path of the field, e.g. services[0].backends[1].weight.
type Error struct {
	File string
	// Line and Column are 1-based; 0 when unknown (a config built in code,
	// or a required field that is absent and has no enclosing value).
	Line, Column int
	// Field is the path of the offending value; "" for the whole document.
	Field string
	Msg   string
}

// Error formats e as file:line:col: field: msg, leaving out what is unknown.
func (e *Error) Error() string {
	var where []string
	if e.File != "" {
		where = append(where, e.File)
	}
	if e.Line > 0 {
		where = append(where, strconv.Itoa(e.Line))
		if e.Column > 0 {
			where = append(where, strconv.Itoa(e.Column))
		}
	}
	var b strings.Builder
	if len(where) > 0 {
		b.WriteString(strings.Join(where, ":"))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one config; Parse and Validate report
// them all at once so a user fixes a file in one round.
type Errors []*Error

// Error returns one error per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find an individual *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// sortErrors orders errors as they appear in the file; errors without a
// position go last, in the order they were found.
func sortErrors(es Errors) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
}

// suggest returns the candidate closest to s when it is close enough to be a
// plausible typo, or "". Case, '_' and '-' are ignored first so that
// drainTimeout finds drain_timeout.
func suggest(s string, candidates []string) string {
	norm := func(x string) string {
		return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(x))
	}
	if len(s) > 64 {
		// No field name is this long, and the distance is quadratic.
		return ""
	}
	ns := norm(s)
	best, bestDist := "", -1
	for _, c := range candidates {
		if norm(c) == ns {
			return c
		}
		d := levenshtein(s, c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	// One edit for short words, then one more per four characters: close
	// enough to catch typos, far enough to avoid suggesting nonsense.
	if bestDist >= 0 && bestDist <= 1+len(s)/4 && bestDist < len(s) {
		return best
	}
	return ""
}

// levenshtein is the edit distance between a and b, in bytes.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
