package hello

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/netns"
)

// TestMulticast runs two endpoints in two network namespaces joined by a
// veth pair, with groups of both families and no unicast peers: hellos go
// to 224.0.0.18 and ff02::12 on the link and come from each side's primary
// address (the one its VRRP adverts come from, so the two merge).
func TestMulticast(t *testing.T) {
	netns.Require(t)
	var ns, dev [2]string
	var v4, v6 [2]netip.Addr
	for i := range 2 {
		ns[i] = fmt.Sprintf("fulcrum-hello-%d-%d", os.Getpid(), i)
		dev[i] = fmt.Sprintf("fh%d-%d", os.Getpid()%100000, i)
		v4[i] = netip.AddrFrom4([4]byte{10, 252, 0, byte(i + 1)})
		v6[i] = netip.AddrFrom16([16]byte{0: 0xfe, 1: 0x80, 15: byte(0xa + i)})
		netns.Add(t, ns[i])
	}
	netns.IP(t, "-n", ns[0], "link", "add", dev[0], "type", "veth", "peer", "name", dev[1], "netns", ns[1])
	for i := range 2 {
		netns.IP(t, "-n", ns[i], "link", "set", dev[i], "addrgenmode", "none")
		netns.IP(t, "-n", ns[i], "addr", "add", v4[i].String()+"/24", "dev", dev[i])
		netns.IP(t, "-n", ns[i], "addr", "add", v6[i].String()+"/64", "dev", dev[i], "nodad")
		netns.IP(t, "-n", ns[i], "link", "set", dev[i], "up")
	}
	var eps [2]*Endpoint
	for i := range 2 {
		var c4, c6 net.PacketConn
		var ifi *net.Interface
		err := netns.Do(ns[i], func() error {
			var err error
			if c4, err = Listen(false, 8051); err != nil {
				return err
			}
			if c6, err = Listen(true, 8051); err != nil {
				return err
			}
			ifi, err = net.InterfaceByName(dev[i])
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		eps[i] = New(Options{Node: fmt.Sprint("lb", i+1), Conn4: c4, Conn6: c6,
			InterfaceByName: func(string) (*net.Interface, error) { return ifi, nil }})
		t.Cleanup(func() { eps[i].Close() })
		eps[i].SetConfigHash(fmt.Sprintf("%016x", i+1))
		st := func() (string, uint8) { return "backup", uint8(100 + i) }
		err = eps[i].SetGroups([]Group{
			{Name: "web4", VRID: 51, Interface: dev[i], Port: 8051, State: st},
			{Name: "web6", VRID: 51, Interface: dev[i], Is6: true, Port: 8051, State: st},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The veth transmits only once link watch saw its carrier: hellos
	// repeat every second, so waiting covers it.
	for i := range 2 {
		for _, g := range []struct {
			name string
			from netip.Addr
		}{{"web4", v4[1-i]}, {"web6", v6[1-i]}} {
			deadline := time.Now().Add(10 * time.Second)
			for {
				ps := eps[i].Peers(g.name)
				if len(ps) == 1 && ps[0].Addr == g.from && ps[0].Node == fmt.Sprint("lb", 2-i) && ps[0].ConfigHash == fmt.Sprintf("%016x", 2-i) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("lb%d, group %s: peers %+v, want lb%d from %v", i+1, g.name, ps, 2-i, g.from)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}
