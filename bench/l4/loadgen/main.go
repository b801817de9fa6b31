// Command loadgen drives the layer-4 benchmark (bench/l4/run.sh). It
// measures one target per run and prints one JSON object on one line.
//
// Modes:
//
//	-mode conn   connection rate: -c workers each loop "connect, send a
//	             SIZE-byte request, read the SIZE-byte reply, close" for
//	             -d; reports completed connections per second, latency
//	             percentiles of a whole connection, and errors by kind.
//	-mode bulk   throughput: -c parallel streams; with -dir down the
//	             backend streams to the client (the usual direction of a
//	             download), with -dir up the client streams to the backend;
//	             reports MB/s (10^6 bytes per second) summed over streams.
//	-mode idle   report how busy the machine is for -d, without load (the
//	             script waits for a quiet machine before every run).
//	-mode wait   wait until every -addr accepts a connection (at most -d).
//
// Both load modes run -warmup first and measure only the -d that follows.
// Every socket operation has a deadline, so a run always ends within
// -warmup + -d + -timeout + 1s even if the target hangs.
//
// With -pid the CPU time (user+system, all threads) that process used
// during the measured window is reported as proc_cpu_pct (100 = one core),
// and every core's busy share from /proc/stat as cpu_busy_pct; they show
// whether the proxy or the load generator was the bottleneck. other_cpu_pct
// is the machine's busy time (100 = one core) not spent in -pid, -ours,
// the load generator itself, ksoftirqd or interrupts: other programs. A
// high value means the run was disturbed.
//
// Closing a client connection normally leaves it in TIME_WAIT on the client
// side. On loopback Linux reuses such ports for new outgoing connections
// (net.ipv4.tcp_tw_reuse=2, the default, means "loopback only"), so the
// connection-rate test does not run out of ephemeral ports at the rates a
// single core reaches. -linger0 closes with SO_LINGER 0 instead (an RST, no
// TIME_WAIT); that changes what the proxy sees, so the script does not use
// it by default. Failed connections are counted by kind, never hidden.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/bits"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fulcrum-lb/fulcrum/bench/internal/procstat"
)

type options struct {
	mode        string
	addrs       []string
	concurrency int
	duration    time.Duration
	warmup      time.Duration
	timeout     time.Duration
	size        int
	chunk       int
	dir         string
	linger0     bool
	pid         int
	ours        []int
	label       string
}

func main() {
	var (
		o     options
		addrs string
	)
	flag.StringVar(&o.mode, "mode", "conn", "`mode`: conn, bulk or wait")
	flag.StringVar(&addrs, "addr", "", "comma-separated target `addresses`, used round robin")
	flag.IntVar(&o.concurrency, "c", 64, "concurrent workers (conn) or streams (bulk)")
	flag.DurationVar(&o.duration, "d", 5*time.Second, "measured `duration` (wait: how long to wait)")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured load before the measured window")
	flag.DurationVar(&o.timeout, "timeout", 2*time.Second, "deadline for one whole connection (conn) or one I/O (bulk)")
	flag.IntVar(&o.size, "size", 64, "request and reply size in `bytes` (conn)")
	flag.IntVar(&o.chunk, "chunk", 256<<10, "read/write block size in `bytes` (bulk)")
	flag.StringVar(&o.dir, "dir", "down", "bulk direction: down (backend to client) or up")
	flag.BoolVar(&o.linger0, "linger0", false, "close client connections with SO_LINGER 0 (RST, no TIME_WAIT)")
	flag.IntVar(&o.pid, "pid", 0, "report the CPU use of this process (the proxy) during the window")
	oursList := flag.String("ours", "", "comma-separated `pids` of the other bench processes (backends); with -pid and\nthe load generator itself they are subtracted from the machine's busy time to give other_cpu_pct")
	flag.StringVar(&o.label, "label", "", "free text copied to the output")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("loadgen: ")

	o.addrs = splitList(addrs)
	for _, f := range splitList(*oursList) {
		n, err := strconv.Atoi(f)
		if err != nil {
			log.Fatalf("-ours %q: %v", f, err)
		}
		o.ours = append(o.ours, n)
	}
	if len(o.addrs) == 0 && o.mode != "idle" {
		log.Fatal("no -addr")
	}
	if o.concurrency <= 0 || o.duration <= 0 || o.size <= 0 || o.chunk <= 0 || o.timeout <= 0 {
		log.Fatal("-c, -d, -size, -chunk and -timeout must be positive")
	}

	var (
		res any
		err error
	)
	switch o.mode {
	case "conn":
		res = runConn(o)
	case "bulk":
		if o.dir != "down" && o.dir != "up" {
			log.Fatalf("-dir %q: want down or up", o.dir)
		}
		res = runBulk(o)
	case "idle":
		res = runIdle(o)
	case "wait":
		err = waitReady(o.addrs, o.duration)
		if err != nil {
			log.Fatal(err)
		}
		return
	default:
		log.Fatalf("-mode %q: want conn, bulk or wait", o.mode)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(res); err != nil {
		log.Fatal(err)
	}
}

// common is the part of the output both load modes share.
type common struct {
	Mode        string           `json:"mode"`
	Label       string           `json:"label,omitempty"`
	Addrs       []string         `json:"addrs"`
	Concurrency int              `json:"concurrency"`
	DurationS   float64          `json:"duration_s"`
	Errors      int64            `json:"errors"`
	ErrorKinds  map[string]int64 `json:"error_kinds,omitempty"`
	ProcCPUPct  *float64         `json:"proc_cpu_pct,omitempty"`
	OtherCPUPct *float64         `json:"other_cpu_pct,omitempty"`
	CPUBusyPct  []float64        `json:"cpu_busy_pct,omitempty"`
}

type connResult struct {
	common
	Conns int64            `json:"conns"`
	Rate  float64          `json:"rate"`
	LatUS map[string]int64 `json:"lat_us"`
}

type bulkResult struct {
	common
	Dir     string  `json:"dir"`
	Bytes   int64   `json:"bytes"`
	MBPerS  float64 `json:"mb_per_s"`
	Streams int     `json:"streams"`
}

// window runs the load for warmup+duration, sampling counter at the start
// and the end of the measured window and CPU use across it. It returns the
// counter's increase, the exact window length and the CPU figures.
func window(o options, counter *atomic.Int64, c *common) (delta int64, elapsed time.Duration) {
	time.Sleep(o.warmup)
	cpu0, err0 := readCPU(o.pid, o.ours)
	n0, t0 := counter.Load(), time.Now()
	time.Sleep(o.duration)
	n1, t1 := counter.Load(), time.Now()
	cpu1, err1 := readCPU(o.pid, o.ours)
	if err0 == nil && err1 == nil {
		c.ProcCPUPct, c.OtherCPUPct, c.CPUBusyPct = cpu1.since(cpu0, t1.Sub(t0))
	}
	c.DurationS = round(t1.Sub(t0).Seconds(), 3)
	return n1 - n0, t1.Sub(t0)
}

// ---- connection rate ----

func runConn(o options) connResult {
	var (
		done    atomic.Int64 // completed connections
		next    atomic.Uint64
		stop    atomic.Bool
		measure atomic.Bool // record latencies only inside the window
		wg      sync.WaitGroup
	)
	workers := make([]*connWorker, o.concurrency)
	for i := range workers {
		w := &connWorker{errs: map[string]int64{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(o, &next, &done, &stop, &measure)
		}()
	}
	time.AfterFunc(o.warmup, func() { measure.Store(true) })

	res := connResult{common: common{Mode: "conn", Label: o.label, Addrs: o.addrs, Concurrency: o.concurrency}}
	n, elapsed := window(o, &done, &res.common)
	measure.Store(false)
	stop.Store(true)
	waitGroup(&wg, o.timeout+time.Second)

	var h histogram
	res.ErrorKinds = map[string]int64{}
	for _, w := range workers {
		if !w.mu.TryLock() {
			continue // still stuck past every deadline; waitGroup said so
		}
		h.merge(&w.hist)
		for k, v := range w.errs {
			res.ErrorKinds[k] += v
			res.Errors += v
		}
		w.mu.Unlock()
	}
	res.Conns = n
	res.Rate = round(float64(n)/elapsed.Seconds(), 1)
	res.LatUS = map[string]int64{
		"p50": h.quantile(0.50), "p90": h.quantile(0.90),
		"p99": h.quantile(0.99), "p999": h.quantile(0.999),
	}
	return res
}

type connWorker struct {
	mu   sync.Mutex // held by the worker while it runs; the main goroutine reads after
	hist histogram
	errs map[string]int64 // errors of the whole run, warm-up included
}

func (w *connWorker) run(o options, next *atomic.Uint64, done *atomic.Int64, stop, measure *atomic.Bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := net.Dialer{Timeout: o.timeout}
	req := make([]byte, o.size)
	for i := range req {
		req[i] = 'q'
	}
	reply := make([]byte, o.size)
	for !stop.Load() {
		addr := o.addrs[next.Add(1)%uint64(len(o.addrs))]
		t0 := time.Now()
		op, err := w.once(&d, addr, t0.Add(o.timeout), req, reply, o.linger0)
		if err != nil {
			w.errs[errKind(op, err)]++
			// Don't spin on an instant failure (connection refused).
			time.Sleep(time.Millisecond)
			continue
		}
		done.Add(1)
		if measure.Load() {
			w.hist.record(time.Since(t0))
		}
	}
}

// once does one connection: connect, request, reply, close. It returns the
// failed operation's name with the error.
func (w *connWorker) once(d *net.Dialer, addr string, deadline time.Time, req, reply []byte, linger0 bool) (string, error) {
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "connect", err
	}
	defer func() {
		if linger0 {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}()
	c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		return "write", err
	}
	if _, err := io.ReadFull(c, reply); err != nil {
		return "read", err
	}
	return "", nil
}

// ---- bulk throughput ----

func runBulk(o options) bulkResult {
	var (
		total atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		errs  = map[string]int64{}
	)
	fail := func(op string, err error) {
		if stop.Load() {
			return // the end of the run closed the connection
		}
		mu.Lock()
		errs[errKind(op, err)]++
		mu.Unlock()
	}
	end := time.Now().Add(o.warmup + o.duration)
	for i := 0; i < o.concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := o.addrs[i%len(o.addrs)]
			c, err := net.DialTimeout("tcp", addr, o.timeout)
			if err != nil {
				fail("connect", err)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			defer c.Close()
			// The measured window ends before this deadline; it only bounds
			// a hung target.
			c.SetDeadline(end.Add(o.timeout))
			cmd := []byte{'D'}
			if o.dir == "up" {
				cmd[0] = 'U'
			}
			if _, err := c.Write(cmd); err != nil {
				fail("write", err)
				return
			}
			buf := make([]byte, o.chunk)
			for !stop.Load() {
				var n int
				if o.dir == "down" {
					n, err = c.Read(buf)
				} else {
					n, err = c.Write(buf)
				}
				total.Add(int64(n))
				if err != nil {
					if err != io.EOF {
						fail(o.dir, err)
					}
					return
				}
			}
		}()
	}

	res := bulkResult{
		common:  common{Mode: "bulk", Label: o.label, Addrs: o.addrs, Concurrency: o.concurrency},
		Dir:     o.dir,
		Streams: o.concurrency,
	}
	n, elapsed := window(o, &total, &res.common)
	stop.Store(true)
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	waitGroup(&wg, o.timeout+time.Second)

	mu.Lock()
	res.ErrorKinds = errs
	for _, v := range errs {
		res.Errors += v
	}
	mu.Unlock()
	res.Bytes = n
	res.MBPerS = round(float64(n)/elapsed.Seconds()/1e6, 1)
	return res
}

// ---- wait ----

func waitReady(addrs []string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, a := range addrs {
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not ready after %v: %w", a, limit, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// ---- CPU accounting ----

type cpuSample struct {
	procTicks int64      // utime+stime of -pid, all threads, in USER_HZ ticks; -1 without -pid
	oursTicks int64      // the same for -pid, -ours, ksoftirqd and this process together
	irqTicks  int64      // irq and softirq time of all cores, accounted to no process
	cores     [][2]int64 // per core: busy ticks, total ticks
}

// softirqThreads lists the kernel threads that process network softirqs
// when a core falls behind; their time is the bench's load too.
var softirqThreads = sync.OnceValue(func() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.HasPrefix(string(comm), "ksoftirqd/") {
			pids = append(pids, pid)
		}
	}
	return pids
})

const userHZ = procstat.UserHZ

func readCPU(pid int, ours []int) (cpuSample, error) {
	var s cpuSample
	f, err := os.Open("/proc/stat")
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 || !strings.HasPrefix(fs[0], "cpu") || fs[0] == "cpu" {
			continue
		}
		var busy, total int64
		for i, v := range fs[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if i >= 8 { // guest time is already counted in user
				break
			}
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
			if i == 5 || i == 6 { // irq, softirq
				s.irqTicks += n
			}
		}
		s.cores = append(s.cores, [2]int64{busy, total})
	}
	s.procTicks = -1
	if pid > 0 {
		t, err := procstat.Ticks(pid)
		if err != nil {
			return s, err
		}
		s.procTicks = t
		s.oursTicks += t
	}
	for _, p := range append(ours, os.Getpid()) {
		t, err := procstat.Ticks(p)
		if err != nil {
			return s, err
		}
		s.oursTicks += t
	}
	for _, p := range softirqThreads() {
		if t, err := procstat.Ticks(p); err == nil {
			s.oursTicks += t
		}
	}
	return s, nil
}

// since returns, for the window from a to b of length wall: the CPU use of
// -pid, the busy time of everything that is not ours (both in % of one
// core) and every core's busy share. Interrupt and softirq time counts as
// ours: on loopback it is almost all the bench's own packets.
func (b cpuSample) since(a cpuSample, wall time.Duration) (proc, other *float64, cores []float64) {
	pct := func(ticks int64) float64 { return float64(ticks) / userHZ / wall.Seconds() * 100 }
	if a.procTicks >= 0 && b.procTicks >= 0 {
		p := round(pct(b.procTicks-a.procTicks), 1)
		proc = &p
	}
	if len(a.cores) != len(b.cores) {
		return proc, nil, nil
	}
	var busySum float64
	for i := range a.cores {
		busy := b.cores[i][0] - a.cores[i][0]
		total := b.cores[i][1] - a.cores[i][1]
		if total <= 0 {
			cores = append(cores, 0)
			continue
		}
		cores = append(cores, round(float64(busy)/float64(total)*100, 1))
		busySum += float64(busy) / float64(total) * 100
	}
	o := round(max(busySum-pct(b.oursTicks-a.oursTicks)-pct(b.irqTicks-a.irqTicks), 0), 1)
	return proc, &o, cores
}

// ---- idle ----

type idleResult struct {
	Mode       string    `json:"mode"`
	BusyPct    float64   `json:"busy_pct"` // all cores together, 100 = one core
	CPUBusyPct []float64 `json:"cpu_busy_pct"`
}

func runIdle(o options) idleResult {
	a, _ := readCPU(0, nil)
	t0 := time.Now()
	time.Sleep(o.duration)
	b, _ := readCPU(0, nil)
	_, _, cores := b.since(a, time.Since(t0))
	res := idleResult{Mode: "idle", CPUBusyPct: cores}
	for _, c := range cores {
		res.BusyPct += c
	}
	res.BusyPct = round(res.BusyPct, 1)
	return res
}

// ---- latency histogram ----

// histogram is a log-linear histogram of microseconds: exact below 16µs,
// then 16 buckets per power of two (at most 6% error).
type histogram struct {
	counts [1024]int64
}

func bucketOf(us uint64) int {
	if us < 16 {
		return int(us)
	}
	e := bits.Len64(us) - 5
	return 16 + e*16 + int((us>>e)&15)
}

func bucketValue(i int) int64 {
	if i < 16 {
		return int64(i)
	}
	e := (i - 16) / 16
	return int64(16+(i-16)%16) << e
}

func (h *histogram) record(d time.Duration) {
	us := uint64(d / time.Microsecond)
	h.counts[bucketOf(us)]++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

func (h *histogram) quantile(q float64) int64 {
	var total int64
	for _, c := range h.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	rank := int64(q*float64(total-1)) + 1
	var seen int64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return bucketValue(i)
		}
	}
	return bucketValue(len(h.counts) - 1)
}

// ---- helpers ----

// errKind names an error without the addresses and ports in it, so equal
// failures add up: "connect: connection refused", "read: timeout".
func errKind(op string, err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return op + ": timeout"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return op + ": " + errno.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return op + ": EOF"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return op + ": " + s
}

func waitGroup(wg *sync.WaitGroup, limit time.Duration) {
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(limit):
		log.Printf("some workers still busy %v after the end; reporting anyway", limit)
	}
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

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
