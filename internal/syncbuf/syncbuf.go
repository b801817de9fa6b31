// Package syncbuf is a bytes.Buffer that several goroutines may write
// while a test reads it: the sink of a logger or a child process's output.
// Tests of many packages needed one, and each wrote its own.
package syncbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is safe for concurrent use; its zero value is empty and ready.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Lines returns what was written so far, split into its non-empty lines.
func (s *Buffer) Lines() []string {
	return strings.FieldsFunc(s.String(), func(r rune) bool { return r == '\n' })
}
