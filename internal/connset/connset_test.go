package connset

import (
	"net"
	"testing"
)

func TestSetDrains(t *testing.T) {
	s := New[int]()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !s.AddListener(ln) || !s.Add(1) || !s.Add(2) {
		t.Fatal("an open set refused a listener or a connection")
	}
	if n := s.Each(func(int) {}); n != 2 {
		t.Errorf("Each saw %d connections, want 2", n)
	}
	var seen []int
	s.Close(func(c int) { seen = append(seen, c) })
	if !s.Closing() || len(seen) != 2 {
		t.Errorf("after Close: closing %v, fn saw %v; want true and both connections", s.Closing(), seen)
	}
	if _, err := ln.Accept(); err == nil {
		t.Error("Close left the listener open")
	}
	if s.Add(3) {
		t.Error("a closing set took a new connection")
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln2.Close()
	if s.AddListener(ln2) {
		t.Error("a closing set took a new listener")
	}
	s.Remove(1)
	select {
	case <-s.Drained():
		t.Fatal("drained with a connection left")
	default:
	}
	s.Remove(2)
	select {
	case <-s.Drained():
	default:
		t.Fatal("not drained after the last connection")
	}
	s.Remove(2) // removing again is harmless
}

func TestCloseEmptyDrainsAtOnce(t *testing.T) {
	s := New[int]()
	s.Close(nil)
	select {
	case <-s.Drained():
	default:
		t.Fatal("an empty set did not drain on Close")
	}
}
