package l4

import (
	"bufio"
	"fmt"
	"net/netip"
	"testing"
)

// TestHashPort sends 40 flows from one address, each from its own port,
// through sh: the port joins the hash only with HashPort (IPVS sh-port),
// which spreads them over the backends; without it they all share one.
func TestHashPort(t *testing.T) {
	t.Parallel()
	const flows, backends = 40, 4
	for _, proto := range []string{"tcp", "udp"} {
		for _, hashPort := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/hash_port=%v", proto, hashPort), func(t *testing.T) {
				t.Parallel()
				var addrs []netip.AddrPort
				for i := range backends {
					id := fmt.Sprint("b", i)
					if proto == "udp" {
						addrs = append(addrs, startUDPBackend(t, id))
					} else {
						addrs = append(addrs, startBackend(t, "tcp", hello(id)).addr)
					}
				}
				s := spec()
				if proto == "udp" {
					s = udpSpec()
				}
				s.Scheduler, s.HashPort = "sh", hashPort
				svc, _ := newService(t, s, nil, addrs...)
				seen := map[string]int{}
				if proto == "udp" {
					_, addr := startUDP(t, svc)
					for range flows {
						got := ask(t, udpClient(t, addr), "hi", waitFor)
						seen[got[:2]]++
					}
				} else {
					_, addr := startTCP(t, "tcp", svc)
					for range flows {
						c := dial(t, addr)
						seen[readLine(t, bufio.NewReader(c))]++
						c.Close()
					}
				}
				if hashPort && len(seen) < backends-1 {
					t.Errorf("with hash_port: flows reached %v, want them spread over at least %d backends", seen, backends-1)
				}
				if !hashPort && len(seen) != 1 {
					t.Errorf("without hash_port: flows reached %v, want all on one backend", seen)
				}
			})
		}
	}
}
