//go:build linux

package decap

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the fuzz seeds in testdata/fuzz/FuzzDecap")

var (
	local4  = netip.MustParseAddr("10.0.0.3")
	local6  = netip.MustParseAddr("fd00::3")
	other4  = netip.MustParseAddr("10.0.0.9")
	other6  = netip.MustParseAddr("fd00::9")
	dir4    = netip.MustParseAddr("10.0.0.2")
	dir6    = netip.MustParseAddr("fd00::2")
	vip4    = netip.MustParseAddr("192.168.0.200")
	vip6    = netip.MustParseAddr("2001:db8::200")
	client4 = netip.MustParseAddr("198.51.100.7")
	client6 = netip.MustParseAddr("2001:db8:c::7")
)

// loadTest loads the program with the addresses above, or skips.
func loadTest(tb testing.TB) *Program {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("loading an XDP program needs root (CAP_BPF, CAP_NET_ADMIN)")
	}
	p, err := Load()
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	tb.Cleanup(func() { p.Close() })
	if err := p.SetLocals([]netip.Addr{local4, local6}); err != nil {
		tb.Fatal(err)
	}
	if err := p.SetVIPs([]netip.Addr{vip4, vip6}); err != nil {
		tb.Fatal(err)
	}
	return p
}

func decapped(etherType uint16, in []byte) []byte { return eth(etherType, in) }

type decapCase struct {
	name    string
	in      []byte
	verdict uint32 // 1 drop, 2 pass
	out     []byte // nil: the frame comes out as it went in
	stat    string
}

func decapCases() []decapCase {
	in4 := inner(client4, vip4, 0)
	in6 := inner(client6, vip6, 0)
	frag := ipv4(client4, vip4, 17, 0, 0x2000, nil, udp(1, 2, []byte("first part"))) // MF
	ect4 := inner(client4, vip4, 2)                                                  // ECT(0)
	ce4 := append([]byte{}, ect4...)
	ce4[1] |= 3
	ce4[10], ce4[11] = 0, 0
	c := csum(ce4[:20])
	ce4[10], ce4[11] = byte(c>>8), byte(c)
	ect6 := inner(client6, vip6, 1) // ECT(1)
	ce6 := append([]byte{}, ect6...)
	ce6[1] |= 3 << 4
	padded := append(tunnel(dir4, local4, 0, in4), make([]byte, 20)...)

	options := eth(0x0800, ipv4(dir4, local4, 4, 0, 0, []byte{1, 1, 1, 0}, in4))
	outerFrag := eth(0x0800, ipv4(dir4, local4, 4, 0, 0x2000, nil, in4))
	outerOffset := eth(0x0800, ipv4(dir4, local4, 4, 0, 0x0001, nil, in4))
	badSum := tunnel(dir4, local4, 0, in4)
	badSum[14+10] ^= 0xff
	longTot := tunnel(dir4, local4, 0, in4)
	longTot[14+3] += 1 // total length one past the frame; checksum fixed up
	longTot[14+10], longTot[14+11] = 0, 0
	c = csum(longTot[14:34])
	longTot[14+10], longTot[14+11] = byte(c>>8), byte(c)
	v6Long := tunnel(dir6, local6, 0, in4)
	v6Long[14+5]++
	wrongVersion := tunnel(dir4, local4, 0, in6)
	wrongVersion[14+9] = 4 // says IPv4 inside, holds IPv6
	innerLong := append([]byte{}, in4...)
	innerLong[3] += 4 // inner total length past the outer payload
	vlan := append(append(append([]byte{}, macDst...), macSrc...), 0x81, 0x00, 0x00, 0x05, 0x08, 0x00)
	vlan = append(vlan, tunnel(dir4, local4, 0, in4)[14:]...)
	arp := eth(0x0806, make([]byte, 28))
	plainUDP := eth(0x0800, ipv4(client4, local4, 17, 0, 0, nil, udp(1, 2, nil)))
	gre := eth(0x0800, ipv4(dir4, local4, 47, 0, 0, nil, in4))

	return []decapCase{
		{"ipip", tunnel(dir4, local4, 0, in4), 2, decapped(0x0800, in4), "decap_4in4"},
		{"6in4", tunnel(dir4, local4, 0, in6), 2, decapped(0x86dd, in6), "decap_6in4"},
		{"4in6", tunnel(dir6, local6, 0, in4), 2, decapped(0x0800, in4), "decap_4in6"},
		{"ip6ip6", tunnel(dir6, local6, 0, in6), 2, decapped(0x86dd, in6), "decap_6in6"},
		{"inner fragment", tunnel(dir4, local4, 0, frag), 2, decapped(0x0800, frag), "decap_4in4"},
		{"ethernet padding", padded, 2, decapped(0x0800, append(append([]byte{}, in4...), make([]byte, 20)...)), "decap_4in4"},
		{"outer CE marks ECT inner v4", tunnel(dir4, local4, 3, ect4), 2, decapped(0x0800, ce4), "decap_4in4"},
		{"outer CE marks ECT inner v6", tunnel(dir6, local6, 3, ect6), 2, decapped(0x86dd, ce6), "decap_6in6"},
		{"outer CE, inner not ECT", tunnel(dir4, local4, 3, in4), 1, nil, "dropped_ecn"},
		{"outer ECT, inner unchanged", tunnel(dir4, local4, 2, in4), 2, decapped(0x0800, in4), "decap_4in4"},

		{"not addressed to us v4", tunnel(dir4, other4, 0, in4), 2, nil, "passed_not_local"},
		{"not addressed to us v6", tunnel(dir6, other6, 0, in6), 2, nil, "passed_not_local"},
		{"inner not to a VIP", tunnel(dir4, local4, 0, inner(client4, other4, 0)), 2, nil, "passed_not_vip"},
		{"inner v6 not to a VIP", tunnel(dir6, local6, 0, inner(client6, other6, 0)), 2, nil, "passed_not_vip"},
		{"plain UDP", plainUDP, 2, nil, "passed_not_tunnel"},
		{"GRE", gre, 2, nil, "passed_not_tunnel"},
		{"ARP", arp, 2, nil, "passed_not_tunnel"},
		{"VLAN tag", vlan, 2, nil, "passed_not_tunnel"},
		{"outer options", options, 2, nil, "passed_options"},
		{"outer more fragments", outerFrag, 2, nil, "passed_fragment"},
		{"outer fragment offset", outerOffset, 2, nil, "passed_fragment"},
		{"outer bad checksum", badSum, 2, nil, "passed_malformed"},
		{"outer length past frame", longTot, 2, nil, "passed_malformed"},
		{"outer v6 length past frame", v6Long, 2, nil, "passed_malformed"},
		{"inner version mismatch", wrongVersion, 2, nil, "passed_malformed"},
		{"inner length past outer", tunnel(dir4, local4, 0, innerLong), 2, nil, "passed_malformed"},
		{"inner truncated", tunnel(dir4, local4, 0, in4[:12]), 2, nil, "passed_malformed"},
		{"inner v6 truncated", tunnel(dir6, local6, 0, in6[:30]), 2, nil, "passed_malformed"},
		{"ethernet only", eth(0x0800, nil), 2, nil, "passed_malformed"},
	}
}

func TestDecap(t *testing.T) {
	p := loadTest(t)
	for _, tc := range decapCases() {
		t.Run(tc.name, func(t *testing.T) {
			before, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			verdict, out, err := p.prog.Test(tc.in)
			if err != nil {
				t.Fatalf("test run: %v", err)
			}
			after, err := p.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if verdict != tc.verdict {
				t.Errorf("verdict %d, want %d", verdict, tc.verdict)
			}
			want := tc.out
			if want == nil {
				want = tc.in
			}
			if tc.verdict == 2 && !bytes.Equal(out, want) {
				t.Errorf("frame out\n%s\nwant\n%s", hex.Dump(out), hex.Dump(want))
			}
			for name, v := range after {
				d := v - before[name]
				if name == tc.stat && d != 1 || name != tc.stat && d != 0 {
					t.Errorf("counter %s moved by %d", name, d)
				}
			}
			// The Go model says the same (it is what the fuzz test trusts).
			mv, mout, mstat := model(tc.in, map[netip.Addr]bool{local4: true, local6: true}, map[netip.Addr]bool{vip4: true, vip6: true})
			if mv != tc.verdict || mstat != tc.stat || tc.verdict == 2 && !bytes.Equal(mout, want) {
				t.Errorf("model: verdict %d, counter %s, frame\n%s", mv, mstat, hex.Dump(mout))
			}
		})
	}
}

// TestDecapTruncated feeds every prefix of tunnelled frames: the program
// must pass each one untouched (the kernel drops what is malformed).
func TestDecapTruncated(t *testing.T) {
	p := loadTest(t)
	frames := [][]byte{
		tunnel(dir4, local4, 0, inner(client4, vip4, 0)),
		tunnel(dir6, local6, 0, inner(client6, vip6, 0)),
		tunnel(dir4, local4, 0, inner(client6, vip6, 0)),
		tunnel(dir6, local6, 0, inner(client4, vip4, 0)),
	}
	for _, f := range frames {
		for n := 14; n < len(f); n++ {
			verdict, out, err := p.prog.Test(f[:n])
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if verdict != 2 || !bytes.Equal(out, f[:n]) {
				t.Errorf("%d of %d bytes: verdict %d, frame changed: %v", n, len(f), verdict, !bytes.Equal(out, f[:n]))
			}
		}
	}
}

func TestMaps(t *testing.T) {
	p := loadTest(t)
	if err := p.SetVIPs([]netip.Addr{vip6, other4}); err != nil {
		t.Fatal(err)
	}
	got, err := p.VIPs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []netip.Addr{other4, vip6}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("VIPs %v, want %v (the old %v must go)", got, want, vip4)
	}
	// An IPv4 VIP set as IPv4-mapped IPv6 is the same key.
	verdict, out, err := p.prog.Test(tunnel(dir4, local4, 0, inner(client4, other4, 0)))
	if err != nil || verdict != 2 || out[12] != 0x08 || len(out) != len(tunnel(dir4, local4, 0, inner(client4, other4, 0)))-20 {
		t.Errorf("decap to the new VIP: verdict %d, err %v", verdict, err)
	}
}

func FuzzDecap(f *testing.F) {
	cases := decapCases()
	if *update {
		dir := filepath.Join("testdata", "fuzz", "FuzzDecap")
		os.MkdirAll(dir, 0o755)
		for _, tc := range cases {
			name := strings.NewReplacer(" ", "_", ",", "").Replace(tc.name)
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", tc.in)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	p := loadTest(f)
	locals := map[netip.Addr]bool{local4: true, local6: true}
	vips := map[netip.Addr]bool{vip4: true, vip6: true}
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 1500 {
			return // the kernel refuses to run on less than an Ethernet header
		}
		verdict, out, err := p.prog.Test(frame)
		if err != nil {
			t.Fatalf("test run: %v", err)
		}
		wv, wout, wstat := model(frame, locals, vips)
		if verdict != wv {
			t.Fatalf("verdict %d, model %d (%s)\n%s", verdict, wv, wstat, hex.Dump(frame))
		}
		if verdict == 2 && !bytes.Equal(out, wout) {
			t.Fatalf("frame out\n%s\nmodel (%s)\n%s", hex.Dump(out), wstat, hex.Dump(wout))
		}
	})
}

// BenchmarkPass runs the program in the kernel on frames it passes
// untouched: the cost every packet that is not tunnelled to us pays. (A
// decapsulated frame cannot be timed so: BPF_PROG_TEST_RUN repeats the
// program on the frame as the last run left it, decapsulated.)
func BenchmarkPass(b *testing.B) {
	p := loadTest(b)
	for _, bc := range []struct {
		name  string
		frame []byte
	}{
		{"not_tunnel", eth(0x0800, ipv4(client4, local4, 17, 0, 0, nil, udp(1, 2, nil)))},
		{"not_local", tunnel(dir4, other4, 0, inner(client4, vip4, 0))},
		{"not_vip", tunnel(dir6, local6, 0, inner(client6, other6, 0))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				verdict, d, err := p.prog.Benchmark(bc.frame, 100000, nil)
				if err != nil || verdict != 2 {
					b.Fatalf("verdict %d, %v", verdict, err)
				}
				b.ReportMetric(float64(d.Nanoseconds()), "ns/packet")
			}
		})
	}
}
