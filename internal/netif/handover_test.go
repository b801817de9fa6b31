package netif

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// TestHandoverRules checks the nft input without running nft: the rules
// the root tests in handover_linux_test.go prove on a real kernel.
func TestHandoverRules(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skipf("skipping: no loopback interface: %v", err)
	}
	var got []string
	h := NewHandover("lo", 7)
	h.run = func(_ context.Context, stdin string, args ...string) error {
		if strings.Join(args, " ") != "-f -" {
			t.Errorf("nft args %q, want -f -", args)
		}
		got = append(got, stdin)
		return nil
	}
	ctx := context.Background()
	v4 := []netip.Addr{netip.MustParseAddr("10.0.0.100"), netip.MustParseAddr("10.0.0.101")}
	v6 := []netip.Addr{netip.MustParseAddr("2001:db8::1")}
	steps := []struct {
		name string
		do   func() error
		want []string
	}{
		{"relay v4", func() error { return h.Relay(ctx, v4, netip.MustParseAddr("10.0.0.2")) }, []string{
			"table ip fulcrum_relay_if" + itoa(lo.Index) + "_vrid7 {",
			"delete table ip fulcrum_relay_",
			`ip daddr { 10.0.0.100, 10.0.0.101 } ct state new tcp flags & syn == 0 dup to 10.0.0.2 device "lo" drop`,
			`ip daddr { 10.0.0.100, 10.0.0.101 } ct state invalid tcp flags & (fin | rst) != 0 dup to 10.0.0.2 device "lo" drop`,
		}},
		{"relay v6 to a link-local master", func() error { return h.Relay(ctx, v6, netip.MustParseAddr("fe80::2%lo")) }, []string{
			"table ip6 fulcrum_relay_",
			`ip6 daddr { 2001:db8::1 } ct state new tcp flags & syn == 0 dup to fe80::2 device "lo" drop`,
		}},
		{"quiet v4", func() error { return h.Quiet(ctx, v4) }, []string{
			"table arp fulcrum_quiet_if" + itoa(lo.Index) + "_vrid7 {",
			`oifname "lo" arp saddr ip { 10.0.0.100, 10.0.0.101 } drop`,
		}},
		{"quiet v6", func() error { return h.Quiet(ctx, v6) }, []string{
			`icmpv6 type nd-neighbor-advert @th,64,128 0x20010db8000000000000000000000001 drop`,
		}},
		{"stop", func() error { return errors.Join(h.StopRelay(ctx), h.StopQuiet(ctx)) }, []string{
			"delete table ip fulcrum_relay_", "delete table ip6 fulcrum_relay_",
			"delete table arp fulcrum_quiet_", "delete table ip6 fulcrum_quiet_",
		}},
	}
	for _, s := range steps {
		got = nil
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		all := strings.Join(got, "")
		for _, w := range s.want {
			if !strings.Contains(all, w) {
				t.Errorf("%s: rules lack %q:\n%s", s.name, w, all)
			}
		}
	}
	if err := h.Relay(ctx, nil, netip.MustParseAddr("10.0.0.2")); err == nil {
		t.Error("Relay without addresses: no error")
	}
	if err := NewHandover("no-such-if0", 7).Quiet(ctx, v4); !errors.Is(err, ErrNoInterface) {
		t.Errorf("Quiet on a missing interface: %v, want ErrNoInterface", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
