package l4

import (
	"bufio"
	"fmt"
	"strings"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
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

// A UDP session leaves a backend that went down or into maintenance when
// the service is not quiescent; a drained backend keeps its sessions.
func TestUDPSessionMovesOffRemovedBackend(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		how       string
		quiescent bool
		moves     bool
	}{
		{"down", false, true},
		{"down", true, false},
		{"maint", false, true},
		{"maint", true, false},
		{"drain", false, false},
		{"drain", true, false},
	} {
		t.Run(fmt.Sprintf("%s quiescent=%v", tt.how, tt.quiescent), func(t *testing.T) {
			t.Parallel()
			spec := udpSpec()
			spec.Quiescent = tt.quiescent
			svc, bs := newService(t, spec, nil, startUDPBackend(t, "a"), startUDPBackend(t, "b"))
			_, addr := startUDP(t, svc)
			c := udpClient(t, addr)
			first, _, _ := strings.Cut(ask(t, c, "1", waitFor), ":")
			i := 0
			if first == "b" {
				i = 1
			}
			switch tt.how {
			case "down":
				bs[i].SetHealthy(false)
			case "maint":
				bs[i].SetAdminState(balancer.AdminMaint)
			case "drain":
				bs[i].SetAdminState(balancer.AdminDrain)
			}
			next, _, _ := strings.Cut(ask(t, c, "2", waitFor), ":")
			if moved := next != first; moved != tt.moves {
				t.Errorf("session went from %s to %s; want moved=%v", first, next, tt.moves)
			}
			// A new client never lands on it.
			if other, _, _ := strings.Cut(ask(t, udpClient(t, addr), "3", waitFor), ":"); other == first {
				t.Errorf("a new client's session went to %s (%s)", first, tt.how)
			}
		})
	}
}
