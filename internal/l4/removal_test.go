package l4

import (
	"bufio"
	"strings"
	"testing"
)

func TestTCPCloseBackend(t *testing.T) {
	t.Parallel()
	a := startBackend(t, "tcp4", hello("a"))
	b := startBackend(t, "tcp4", hello("b"))
	svc, bs := newService(t, spec(), nil, a.addr, b.addr)
	p, addr := startTCP(t, "tcp4", svc)

	conns := map[string][]*bufio.Reader{}
	for range 4 {
		r := bufio.NewReader(dial(t, addr))
		id := readLine(t, r)
		conns[id] = append(conns[id], r)
	}
	if len(conns["a"]) != 2 || len(conns["b"]) != 2 {
		t.Fatalf("got %d on a and %d on b, want 2 each", len(conns["a"]), len(conns["b"]))
	}
	if n := p.CloseBackend(bs[0]); n != 2 {
		t.Fatalf("CloseBackend: got %d closed, want 2", n)
	}
	for _, r := range conns["a"] {
		if _, err := r.ReadString('\n'); err == nil {
			t.Errorf("connection to the removed backend still open")
		}
	}
	eventually(t, "backend a released", func() bool { return bs[0].Active() == 0 })
	if got := bs[1].Active(); got != 2 {
		t.Errorf("connections to b: got %d active, want 2 untouched", got)
	}
}

func TestUDPSessionMovesOffRemovedBackend(t *testing.T) {
	t.Parallel()
	for _, quiescent := range []bool{false, true} {
		name := "removal"
		if quiescent {
			name = "quiescent"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec := udpSpec()
			spec.Quiescent = quiescent
			svc, bs := newService(t, spec, nil, startUDPBackend(t, "a"), startUDPBackend(t, "b"))
			_, addr := startUDP(t, svc)
			c := udpClient(t, addr)
			first, _, _ := strings.Cut(ask(t, c, "1", waitFor), ":")
			i := 0
			if first == "b" {
				i = 1
			}
			bs[i].SetHealthy(false)
			next, _, _ := strings.Cut(ask(t, c, "2", waitFor), ":")
			if quiescent && next != first {
				t.Errorf("quiescent: session moved from %s to %s, want it kept", first, next)
			}
			if !quiescent && next == first {
				t.Errorf("removal: session stayed on the down backend %s", first)
			}
		})
	}
}
