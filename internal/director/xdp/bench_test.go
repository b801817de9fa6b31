//go:build linux

package xdp

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The benchmarks run the program through BPF_PROG_TEST_RUN once per
// iteration (a repeated run would feed a forwarded frame, which no longer
// carries the director's MAC, to the next run) and report, besides Go's
// ns/op that includes the syscall, the program's own run time per packet
// as the kernel accounts it (kernel.bpf_stats_enabled), ns/packet: the
// number bench/director compares. The flow exists before timing starts:
// this is the established-flow path, the common one.

func benchForward(b *testing.B, pkt []byte, want uint32) {
	benchRun(b, pkt, want, true, nil, nil)
}

// benchRun times b.N runs of pkt, calling next (if set) before each to
// change it; with warm, one untimed run creates the flow first. setup (if
// set) changes the standard lab before.
func benchRun(b *testing.B, pkt []byte, want uint32, warm bool, setup func(l *lab), next func(i int, pkt []byte)) {
	l := newLab(b, Options{FlowTableSize: 1 << 20})
	l.standard()
	if setup != nil {
		setup(l)
	}
	if warm {
		if got, _ := l.run(pkt); got != want {
			b.Fatalf("verdict %s, want %s", verdictNames[got], verdictNames[want])
		}
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("kernel BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	s0, err := l.p.objs.FulcrumXdp.Stats()
	if err != nil {
		b.Fatal(err)
	}
	out := make([]byte, len(pkt)+64)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: out}
	b.ResetTimer()
	for i := range b.N {
		if next != nil {
			next(i, pkt)
		}
		opts.DataOut = out
		if got, err := l.p.objs.FulcrumXdp.Run(opts); err != nil || got != want {
			b.Fatalf("verdict %d, %v", got, err)
		}
	}
	b.StopTimer()
	s1, err := l.p.objs.FulcrumXdp.Stats()
	if err != nil {
		b.Fatal(err)
	}
	t0, t1, n0, n1 := s0.Runtime, s1.Runtime, s0.RunCount, s1.RunCount
	if n1-n0 < uint64(b.N) {
		b.Fatalf("the kernel counted %d runs of %d", n1-n0, b.N)
	}
	b.ReportMetric(float64((t1-t0).Nanoseconds())/float64(n1-n0), "ns/packet")
}

func BenchmarkForwardDirectV4(b *testing.B) {
	benchForward(b, pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{}), xdpTX)
}

func BenchmarkForwardDirectV6(b *testing.B) {
	benchForward(b, pkt6(cli6, 40000, vip6, 80, protoTCP), xdpTX)
}

func BenchmarkForwardTunnelV4(b *testing.B) {
	benchForward(b, pkt4(cli4, 40000, vip4t, 443, protoTCP, v4opts{}), xdpTX)
}

func BenchmarkForwardTunnelV6(b *testing.B) {
	benchForward(b, pkt6(cli6, 40000, vip6t, 443, protoTCP), xdpTX)
}

// BenchmarkForwardTunnelV4KnownMTU and ...V6KnownMTU are the tunnel
// benchmarks with Real.MTU set, as the control plane sets it: a plain
// comparison instead of asking the kernel (bpf_check_mtu) per packet.
func BenchmarkForwardTunnelV4KnownMTU(b *testing.B) {
	benchRun(b, pkt4(cli4, 40000, vip4t, 443, protoTCP, v4opts{}), xdpTX, true, knownMTU, nil)
}

func BenchmarkForwardTunnelV6KnownMTU(b *testing.B) {
	benchRun(b, pkt6(cli6, 40000, vip6t, 443, protoTCP), xdpTX, true, knownMTU, nil)
}

func knownMTU(l *lab) {
	l.real(slotTun4, Real{Addr: tun4, DstMAC: gwMAC, SrcMAC: dirMAC, IfIndex: loIndex, TunnelSrc: tsrc4, MTU: 1500})
	l.real(slotTun6, Real{Addr: tun6, DstMAC: gwMAC, SrcMAC: dirMAC, IfIndex: loIndex, TunnelSrc: tsrc6, MTU: 1500})
}

// BenchmarkForwardPass is a packet for no service: the cost the program
// adds to traffic it leaves to the kernel.
func BenchmarkForwardPass(b *testing.B) {
	benchForward(b, pkt4(cli4, 40000, vip4, 81, protoTCP, v4opts{}), xdpPass)
}

// BenchmarkForwardNewFlow is a new flow per packet (a SYN from another
// client port each time): ring lookup, flow insertion and the new-flow
// event, the cost per new connection.
func BenchmarkForwardNewFlow(b *testing.B) {
	pkt := pkt4(cli4, 0, vip4, 80, protoTCP, v4opts{})
	benchRun(b, pkt, xdpTX, false, nil, func(i int, pkt []byte) {
		// Source address and port from i: 2^32 distinct flows.
		pkt[14+12+2] = byte(i >> 24)
		pkt[14+12+3] = byte(i >> 16)
		pkt[14+20] = byte(i >> 8)
		pkt[14+20+1] = byte(i)
	})
}

// BenchmarkForwardNewFlowPersisted is a new flow per packet of a service
// with persistence whose clients (one /16 under the netmask) all go where
// the first went: flow insertion plus the persistence lookup and restamp.
func BenchmarkForwardNewFlowPersisted(b *testing.B) {
	pkt := pkt4(cli4, 0, vip4, 80, protoTCP, v4opts{})
	setup := func(l *lab) {
		l.service(vip4, 80, protoTCP, Service{ID: 0, Mode: ModeDirect, PersistGroup: 1,
			PersistTimeout: time.Hour, PersistBits4: 16}, fill(slotRS1))
		must(l.t, l.p.SetMember(0, rs1, slotRS1))
	}
	benchRun(b, pkt, xdpTX, true, setup, func(i int, pkt []byte) {
		// The low 16 bits of the source address and the port from i.
		pkt[14+12+3] = byte(i >> 16)
		pkt[14+20] = byte(i >> 8)
		pkt[14+20+1] = byte(i)
	})
}

// BenchmarkForwardFloor runs a program that returns XDP_PASS at once,
// through the same PROG_TEST_RUN and run-time accounting: what every
// ns/packet above includes before the program does anything (the
// accounting's own clock reads among it). Subtract it to compare the
// program's work.
func BenchmarkForwardFloor(b *testing.B) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(xdpPass)), asm.Return()},
	})
	if err != nil {
		b.Skipf("loading a BPF program: %v", err)
	}
	defer prog.Close()
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Skipf("kernel BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	pkt := pkt4(cli4, 40000, vip4, 80, protoTCP, v4opts{})
	s0, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if got, err := prog.Run(&ebpf.RunOptions{Data: pkt}); err != nil || got != xdpPass {
			b.Fatalf("verdict %d, %v", got, err)
		}
	}
	b.StopTimer()
	s1, err := prog.Stats()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((s1.Runtime-s0.Runtime).Nanoseconds())/float64(s1.RunCount-s0.RunCount), "ns/packet")
}
