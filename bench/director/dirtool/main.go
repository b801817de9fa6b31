// Command dirtool is the director benchmark's helper (bench/director/run.sh).
// It has three modes:
//
//	-mode flood    send small UDP datagrams to -addr from -ports sockets
//	               (one source port each) as fast as one goroutine can, with
//	               sendmmsg in batches of -batch, for -warmup + -d; prints
//	               one JSON line with the packets sent.
//	-mode rawflood the same datagrams as finished Ethernet frames written
//	               straight onto -iface (AF_PACKET, sendmmsg, no qdisc),
//	               from -src (at -src-mac) to -addr at -dst-mac, source
//	               ports cycling through -ports values: no socket, routing
//	               or neighbour work per packet, so one core offers several
//	               times what -mode flood can.
//	-mode watch    measure what the director did in a window: sleep -warmup,
//	               take a sample, sleep -d, take another, print the
//	               difference as one JSON line. The script starts it beside
//	               the load generator (same warm-up and duration), so both
//	               windows coincide to a few milliseconds. A sample holds:
//	                 - every core's busy and softirq time (/proc/stat);
//	                 - the CPU time of -pids (user+system, all threads),
//	                   and apart from it that of -also-pids;
//	                 - the run time and run count of the BPF programs
//	                   -bpf-progs, from the kernel's per-program accounting,
//	                   which this mode switches on for its lifetime
//	                   (BPF_ENABLE_STATS: off again when the process ends,
//	                   however it ends; kernel.bpf_stats_enabled is left
//	                   alone);
//	                 - the packet and byte counters of -links, each
//	                   NETNS:IFNAME (a name under /var/run/netns).
//	-mode xdppass  attach a program that passes every packet (XDP_PASS) to
//	               -iface in native mode and exit; the attachment stays
//	               until removed (ip link set dev IFACE xdpdrv off). A veth
//	               delivers XDP_TX frames of its peer only when it has an
//	               XDP program itself.
//
// Every mode ends on its own: flood and watch after -warmup + -d (plus at
// most one second), xdppass at once.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/fulcrum-lb/fulcrum/bench/internal/procstat"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func main() {
	var (
		mode     = flag.String("mode", "", "`mode`: flood, watch or xdppass")
		addr     = flag.String("addr", "", "flood: target `ip:port`")
		src      = flag.String("src", "", "flood: local `ip` to send from (default: chosen by the kernel)")
		ports    = flag.Int("ports", 256, "flood: source sockets (distinct source ports)")
		size     = flag.Int("size", 18, "flood: UDP payload `bytes` (18 makes a 60-byte frame)")
		batch    = flag.Int("batch", 64, "flood: datagrams per sendmmsg")
		warmup   = flag.Duration("warmup", 500*time.Millisecond, "unmeasured time before the window")
		duration = flag.Duration("d", 3*time.Second, "measured `duration`")
		pids     = flag.String("pids", "", "watch: comma-separated `pids` whose CPU time to measure")
		alsoPids = flag.String("also-pids", "", "watch: comma-separated `pids` whose CPU time to report apart (also_ms)")
		progs    = flag.String("bpf-progs", "", "watch: comma-separated BPF program `ids` whose run time to measure")
		links    = flag.String("links", "", "watch: comma-separated `netns:ifname` whose counters to read")
		iface    = flag.String("iface", "", "xdppass, rawflood: `interface` in the current network namespace")
		srcMAC   = flag.String("src-mac", "", "rawflood: source `MAC`")
		dstMAC   = flag.String("dst-mac", "", "rawflood: destination `MAC` (the director's interface)")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("dirtool: ")
	if *duration <= 0 || *warmup < 0 {
		log.Fatal("-d must be positive and -warmup not negative")
	}
	var (
		res any
		err error
	)
	switch *mode {
	case "flood":
		res, err = flood(*addr, *src, *ports, *size, *batch, *warmup+*duration)
	case "rawflood":
		res, err = rawFlood(*iface, *srcMAC, *dstMAC, *src, *addr, *ports, *size, *batch, *warmup+*duration)
	case "watch":
		res, err = watch(*warmup, *duration, list(*pids), list(*alsoPids), list(*progs), list(*links))
	case "xdppass":
		err = xdpPass(*iface)
	default:
		log.Fatalf("-mode %q: want flood, rawflood, watch or xdppass", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
	if res != nil {
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			log.Fatal(err)
		}
	}
}

// ---- flood ----

type floodResult struct {
	Mode     string  `json:"mode"`
	Sent     uint64  `json:"sent"`
	Seconds  float64 `json:"seconds"`
	SentPPS  float64 `json:"sent_pps"`
	Errors   uint64  `json:"errors"`
	Sockets  int     `json:"sockets"`
	LastErr  string  `json:"last_error,omitempty"`
	Payload  int     `json:"payload"`
	BatchLen int     `json:"batch"`
}

// flood sends from nports unconnected sockets in turn, a batch per socket,
// until d has passed. Unconnected sockets never report the ICMP errors a
// target may send back, so an unreachable port costs nothing here.
func flood(addr, src string, nports, size, batch int, d time.Duration) (floodResult, error) {
	res := floodResult{Mode: "flood", Sockets: nports, Payload: size, BatchLen: batch}
	if nports <= 0 || size <= 0 || batch <= 0 {
		return res, errors.New("-ports, -size and -batch must be positive")
	}
	dst, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return res, fmt.Errorf("-addr: %w", err)
	}
	local := &net.UDPAddr{}
	if src != "" {
		if local.IP = net.ParseIP(src); local.IP == nil {
			return res, fmt.Errorf("-src %q: not an address", src)
		}
	}
	conns := make([]*ipv4.PacketConn, nports)
	for i := range conns {
		c, err := net.ListenUDP("udp4", local)
		if err != nil {
			return res, fmt.Errorf("socket %d: %w", i, err)
		}
		defer c.Close()
		conns[i] = ipv4.NewPacketConn(c)
	}
	payload := make([]byte, size)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{payload}, Addr: dst}
	}
	t0 := time.Now()
	end := t0.Add(d)
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(end) {
			break
		}
		n, err := conns[i%nports].WriteBatch(msgs, 0)
		if n > 0 {
			res.Sent += uint64(n)
		}
		if err != nil {
			res.Errors++
			res.LastErr = err.Error()
		}
	}
	res.Seconds = round(time.Since(t0).Seconds(), 3)
	res.SentPPS = round(float64(res.Sent)/res.Seconds, 0)
	return res, nil
}

// rawFlood writes nports IPv4/UDP frames, differing in the source port,
// onto ifname in turn, batch frames per sendmmsg, until d has passed.
func rawFlood(ifname, srcMAC, dstMAC, src, addr string, nports, size, batch int, d time.Duration) (floodResult, error) {
	res := floodResult{Mode: "rawflood", Sockets: nports, Payload: size, BatchLen: batch}
	if nports <= 0 || nports > 60000 || size <= 0 || size > 1400 || batch <= 0 {
		return res, errors.New("-ports (1..60000), -size (1..1400) and -batch must be in range")
	}
	smac, err := net.ParseMAC(srcMAC)
	if err != nil {
		return res, fmt.Errorf("-src-mac: %w", err)
	}
	dmac, err := net.ParseMAC(dstMAC)
	if err != nil {
		return res, fmt.Errorf("-dst-mac: %w", err)
	}
	sip, err := netip.ParseAddr(src)
	if err != nil || !sip.Is4() {
		return res, fmt.Errorf("-src %q: want an IPv4 address", src)
	}
	dst, err := netip.ParseAddrPort(addr)
	if err != nil || !dst.Addr().Is4() {
		return res, fmt.Errorf("-addr %q: want IPv4 ip:port", addr)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return res, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: send only
	if err != nil {
		return res, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		return res, fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		return res, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	frames := make([][]byte, nports)
	for i := range frames {
		frames[i] = udpFrame(dmac, smac, sip, dst, uint16(1024+i), size)
	}
	iovs := make([]unix.Iovec, batch)
	hdrs := make([]unix.Mmsghdr, batch)
	for i := range hdrs {
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.Iovlen = 1
	}
	t0 := time.Now()
	end := t0.Add(d)
	next := 0
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(end) {
			break
		}
		for j := range iovs {
			f := frames[next]
			iovs[j].Base = &f[0]
			iovs[j].SetLen(len(f))
			if next++; next == len(frames) {
				next = 0
			}
		}
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), uintptr(batch), 0, 0, 0)
		if errno != 0 {
			res.Errors++
			res.LastErr = errno.Error()
			continue
		}
		res.Sent += uint64(n)
	}
	res.Seconds = round(time.Since(t0).Seconds(), 3)
	res.SentPPS = round(float64(res.Sent)/res.Seconds, 0)
	return res, nil
}

// udpFrame builds an Ethernet frame holding an IPv4/UDP datagram of size
// zero bytes (UDP checksum 0: none, as IPv4 allows).
func udpFrame(dmac, smac net.HardwareAddr, src netip.Addr, dst netip.AddrPort, sport uint16, size int) []byte {
	f := make([]byte, 14+20+8+size)
	copy(f[0:6], dmac)
	copy(f[6:12], smac)
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+8+size))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = 17
	s4, d4 := src.As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i : i+2]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], sport)
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+size))
	return f
}

// ---- watch ----

type sample struct {
	at        time.Time
	busy      []int64 // per core, USER_HZ ticks (everything but idle and iowait)
	softirq   []int64 // per core
	pidTicks  []int64 // per -pids entry
	alsoTicks int64   // -also-pids together
	bpfNS     int64
	bpfRuns   int64
	links     []netlink.LinkStatistics
}

type watchResult struct {
	Mode       string    `json:"mode"`
	Seconds    float64   `json:"seconds"`
	CoreBusyMS []float64 `json:"core_busy_ms"`    // per core
	CoreSirqMS []float64 `json:"core_softirq_ms"` // per core
	Cores      []float64 `json:"core_busy_pct"`   // per core
	PidMS      float64   `json:"pid_ms"`          // -pids together
	PidMSEach  []float64 `json:"pid_ms_each"`     // per -pids entry
	AlsoMS     float64   `json:"also_ms"`         // -also-pids together
	BPFNS      int64     `json:"bpf_run_ns"`      // -bpf-progs together
	BPFRuns    int64     `json:"bpf_run_cnt"`
	RxPackets  uint64    `json:"rx_packets"` // -links together
	TxPackets  uint64    `json:"tx_packets"`
	RxBytes    uint64    `json:"rx_bytes"`
	TxBytes    uint64    `json:"tx_bytes"`
	// Per link, in -links order, for the script to pick from.
	LinkRxPackets []uint64 `json:"link_rx_packets"`
	LinkTxPackets []uint64 `json:"link_tx_packets"`
	LinkTxDropped []uint64 `json:"link_tx_dropped"`
	LinkRxBytes   []uint64 `json:"link_rx_bytes"`
	LinkTxBytes   []uint64 `json:"link_tx_bytes"`
}

const userHZ = procstat.UserHZ

func watch(warmup, d time.Duration, pids, alsoPids, progIDs, links []string) (watchResult, error) {
	res := watchResult{Mode: "watch"}
	var w watcher
	if len(progIDs) > 0 {
		// Switched on here, before the window: the counters are cumulative,
		// so only their difference across the window is used.
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			return res, fmt.Errorf("enable BPF run-time statistics: %w", err)
		}
		defer stats.Close()
	}
	for _, p := range pids {
		n, err := strconv.Atoi(p)
		if err != nil {
			return res, fmt.Errorf("-pids %q: %w", p, err)
		}
		w.pids = append(w.pids, n)
	}
	for _, p := range alsoPids {
		n, err := strconv.Atoi(p)
		if err != nil {
			return res, fmt.Errorf("-also-pids %q: %w", p, err)
		}
		w.alsoPids = append(w.alsoPids, n)
	}
	for _, id := range progIDs {
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil {
			return res, fmt.Errorf("-bpf-progs %q: %w", id, err)
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(n))
		if err != nil {
			return res, fmt.Errorf("BPF program %d: %w", n, err)
		}
		defer p.Close()
		w.progs = append(w.progs, p)
	}
	for _, l := range links {
		nsName, ifName, ok := strings.Cut(l, ":")
		if !ok {
			return res, fmt.Errorf("-links %q: want netns:ifname", l)
		}
		h, err := handleIn(nsName)
		if err != nil {
			return res, err
		}
		defer h.Close()
		w.links = append(w.links, linkRef{h, ifName, l})
	}
	time.Sleep(warmup)
	a, err := w.sample()
	if err != nil {
		return res, err
	}
	time.Sleep(d)
	b, err := w.sample()
	if err != nil {
		return res, err
	}
	wall := b.at.Sub(a.at).Seconds()
	res.Seconds = round(wall, 3)
	ms := func(ticks int64) float64 { return round(float64(ticks)*1000/userHZ, 1) }
	for i := range a.busy {
		if i >= len(b.busy) {
			break
		}
		res.CoreBusyMS = append(res.CoreBusyMS, ms(b.busy[i]-a.busy[i]))
		res.CoreSirqMS = append(res.CoreSirqMS, ms(b.softirq[i]-a.softirq[i]))
		res.Cores = append(res.Cores, round(float64(b.busy[i]-a.busy[i])/userHZ/wall*100, 1))
	}
	var pidTicks int64
	for i := range a.pidTicks {
		pidTicks += b.pidTicks[i] - a.pidTicks[i]
		res.PidMSEach = append(res.PidMSEach, ms(b.pidTicks[i]-a.pidTicks[i]))
	}
	res.PidMS = ms(pidTicks)
	res.AlsoMS = ms(b.alsoTicks - a.alsoTicks)
	res.BPFNS = b.bpfNS - a.bpfNS
	res.BPFRuns = b.bpfRuns - a.bpfRuns
	for i := range a.links {
		x, y := a.links[i], b.links[i]
		res.RxPackets += y.RxPackets - x.RxPackets
		res.TxPackets += y.TxPackets - x.TxPackets
		res.RxBytes += y.RxBytes - x.RxBytes
		res.TxBytes += y.TxBytes - x.TxBytes
		res.LinkRxPackets = append(res.LinkRxPackets, y.RxPackets-x.RxPackets)
		res.LinkTxPackets = append(res.LinkTxPackets, y.TxPackets-x.TxPackets)
		res.LinkTxDropped = append(res.LinkTxDropped, y.TxDropped-x.TxDropped)
		res.LinkRxBytes = append(res.LinkRxBytes, y.RxBytes-x.RxBytes)
		res.LinkTxBytes = append(res.LinkTxBytes, y.TxBytes-x.TxBytes)
	}
	return res, nil
}

type linkRef struct {
	h    *netlink.Handle
	name string
	desc string
}

type watcher struct {
	pids     []int
	alsoPids []int
	progs    []*ebpf.Program
	links    []linkRef
}

func (w *watcher) sample() (sample, error) {
	s := sample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		if len(fs) < 8 || !strings.HasPrefix(fs[0], "cpu") || fs[0] == "cpu" {
			continue
		}
		var busy, sirq int64
		for i, v := range fs[1:] {
			if i >= 8 { // guest time is already in user
				break
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
			if i == 6 {
				sirq = n
			}
		}
		s.busy = append(s.busy, busy)
		s.softirq = append(s.softirq, sirq)
	}
	for _, p := range w.pids {
		t, err := procstat.Ticks(p)
		if err != nil {
			return s, err
		}
		s.pidTicks = append(s.pidTicks, t)
	}
	for _, p := range w.alsoPids {
		t, err := procstat.Ticks(p)
		if err != nil {
			return s, err
		}
		s.alsoTicks += t
	}
	for _, p := range w.progs {
		st, err := p.Stats()
		if err != nil {
			return s, fmt.Errorf("BPF program statistics: %w", err)
		}
		s.bpfNS += st.Runtime.Nanoseconds()
		s.bpfRuns += int64(st.RunCount)
	}
	for _, l := range w.links {
		ln, err := l.h.LinkByName(l.name)
		if err != nil {
			return s, fmt.Errorf("link %s: %w", l.desc, err)
		}
		st := ln.Attrs().Statistics
		if st == nil {
			return s, fmt.Errorf("link %s: no statistics", l.desc)
		}
		s.links = append(s.links, *st)
	}
	return s, nil
}

// handleIn opens a netlink handle in the named network namespace.
func handleIn(name string) (*netlink.Handle, error) {
	ns, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("netns %s: %w", name, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", name, err)
	}
	return h, nil
}

// ---- xdppass ----

func xdpPass(ifname string) error {
	if ifname == "" {
		return errors.New("xdppass: no -iface")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "bench_pass",
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 2), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("load the XDP_PASS program: %w", err)
	}
	defer prog.Close() // the attachment keeps its own reference
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetXdpFdWithFlags(link, prog.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil {
		return fmt.Errorf("attach XDP_PASS to %s (native): %w", ifname, err)
	}
	return nil
}

// ---- helpers ----

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v >= 0 {
		return float64(int64(v*p+0.5)) / p
	}
	return -float64(int64(-v*p+0.5)) / p
}
