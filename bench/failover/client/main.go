// Command client is the client in the failover benchmark
// (bench/failover/run.sh). It runs inside the client's network namespace
// and requests a URL on the VIP every -interval, each request on a new
// connection in its own goroutine with a -timeout, so that a request lost
// in the outage does not hide the first one that succeeds after it.
//
// Protocol with the script:
//
//   - once -ready requests in a row have succeeded, it prints "ready";
//   - the script injects the fault and writes "fault UNIX_NANOS" on stdin
//     (the time just before the fault);
//   - once -settle requests in a row that started after the fault have
//     succeeded (or -max after the fault), it stops issuing requests,
//     waits for those in flight, prints one JSON line and exits.
//
// The JSON line reports the service gap (the longest time between two
// consecutive successful completions, which spans the fault), the last
// success before and the first after relative to the fault, the failed
// requests by kind, and when the client's neighbour entry for the VIP
// changed (the new master's gratuitous ARP arriving), read from
// /proc/net/arp every millisecond.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type result struct {
	start, end time.Time
	err        error
}

type report struct {
	FaultUnixNS int64 `json:"fault_unix_ns"`
	// FaultReadMS is how long after the fault the script's message came.
	FaultReadMS float64 `json:"fault_read_ms"`
	Recovered   bool    `json:"recovered"`
	// GapMS is the longest time between consecutive successes; Before and
	// After are that gap's ends relative to the fault.
	GapMS    float64        `json:"gap_ms"`
	BeforeMS float64        `json:"before_ms"`
	AfterMS  float64        `json:"after_ms"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Errors   map[string]int `json:"errors"`
	// ARPMovedMS is when the client's neighbour entry for the VIP first
	// changed after the fault, relative to it; -1 if it did not.
	ARPMovedMS float64 `json:"arp_moved_ms"`
	ARPFrom    string  `json:"arp_from"`
	ARPTo      string  `json:"arp_to"`
	// ARP is every change of the entry from 2s before the fault on ("" =
	// no complete entry), relative to the fault.
	ARP []arpChange `json:"arp"`
}

type arpChange struct {
	MS  float64 `json:"ms"`
	MAC string  `json:"mac"`
}

func main() {
	var (
		target   = flag.String("url", "", "`URL` to request")
		interval = flag.Duration("interval", 10*time.Millisecond, "time between requests")
		timeout  = flag.Duration("timeout", 500*time.Millisecond, "bound of each request")
		ready    = flag.Int("ready", 30, "successes in a row before reporting ready")
		settle   = flag.Int("settle", 50, "successes in a row, started after the fault, that end the run")
		maxWait  = flag.Duration("max", 20*time.Second, "give up this long after the fault")
		readyMax = flag.Duration("ready-timeout", 30*time.Second, "give up when not ready within this")
	)
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Hostname() == "" {
		log.Fatalf("client: -url %q: want http://ADDRESS/", *target)
	}
	vip := u.Hostname()

	client := &http.Client{
		Timeout:   *timeout,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
	var (
		mu        sync.Mutex
		results   []result
		fault     time.Time
		faultRead time.Duration // how late the fault line came
		streak    int           // successes in a row (by completion)
		after     int           // of which started after the fault
		isReady   = make(chan struct{})
		done      = make(chan struct{})
		once      sync.Once
		readyDo   sync.Once
	)
	record := func(r result) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		if r.err != nil {
			streak, after = 0, 0
			return
		}
		streak++
		if !fault.IsZero() && r.start.After(fault) {
			after++
		}
		if streak >= *ready {
			readyDo.Do(func() { close(isReady) })
		}
		if after >= *settle {
			once.Do(func() { close(done) })
		}
	}

	arp := newARPWatch(vip)
	ctx, cancel := context.WithCancel(context.Background())
	go arp.run(ctx)

	var wg sync.WaitGroup
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		tick := time.NewTicker(*interval)
		defer tick.Stop()
		for {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := result{start: time.Now()}
				resp, err := client.Get(*target)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				r.end, r.err = time.Now(), err
				record(r)
			}()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()

	select {
	case <-isReady:
	case <-time.After(*readyMax):
		log.Fatalf("client: not %d successes in a row within %v", *ready, *readyMax)
	}
	fmt.Println("ready")

	// Wait for the fault time on stdin.
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "fault" {
			ns, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				log.Fatalf("client: %q: %v", sc.Text(), err)
			}
			readAt := time.Now()
			mu.Lock()
			fault = time.Unix(0, ns)
			faultRead = readAt.Sub(fault)
			after = 0
			mu.Unlock()
			arp.mark(fault)
			break
		}
	}
	if fault.IsZero() {
		log.Fatal("client: stdin closed before the fault")
	}
	recovered := true
	select {
	case <-done:
	case <-time.After(time.Until(fault.Add(*maxWait))):
		recovered = false
		once.Do(func() { close(done) })
	}
	<-loopDone
	wg.Wait()
	cancel()

	mu.Lock()
	rep := summarize(results, fault)
	mu.Unlock()
	rep.Recovered = recovered
	rep.FaultReadMS = ms(faultRead)
	rep.ARPMovedMS, rep.ARPFrom, rep.ARPTo = arp.moved()
	rep.ARP = arp.history()
	json.NewEncoder(os.Stdout).Encode(rep)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func summarize(res []result, fault time.Time) report {
	res = slices.Clone(res)
	slices.SortFunc(res, func(a, b result) int { return a.end.Compare(b.end) })
	rep := report{FaultUnixNS: fault.UnixNano(), Errors: map[string]int{}, ARPMovedMS: -1}
	var last time.Time
	for _, r := range res {
		if r.err != nil {
			rep.Failed++
			rep.Errors[errKind(r.err)]++
			continue
		}
		rep.OK++
		if !last.IsZero() && ms(r.end.Sub(last)) > rep.GapMS {
			rep.GapMS = ms(r.end.Sub(last))
			rep.BeforeMS, rep.AfterMS = ms(last.Sub(fault)), ms(r.end.Sub(fault))
		}
		last = r.end
	}
	return rep
}

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	return "other"
}

// arpWatch follows the neighbour entry of one IPv4 address in
// /proc/net/arp.
type arpWatch struct {
	ip string

	mu      sync.Mutex
	fault   time.Time
	atFault string
	movedAt time.Time
	movedTo string
	cur     string
	changes []change
}

type change struct {
	at  time.Time
	mac string
}

func newARPWatch(ip string) *arpWatch { return &arpWatch{ip: ip} }

func (a *arpWatch) run(ctx context.Context) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		mac := a.read()
		now := time.Now()
		a.mu.Lock()
		if mac != a.cur || len(a.changes) == 0 {
			a.changes = append(a.changes, change{now, mac})
		}
		a.cur = mac
		if !a.fault.IsZero() && a.movedAt.IsZero() && mac != "" && mac != a.atFault {
			a.movedAt, a.movedTo = now, mac
		}
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// read returns the complete entry's hardware address, "" if none.
func (a *arpWatch) read() string {
	b, err := os.ReadFile("/proc/net/arp")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// IP address, HW type, Flags, HW address, Mask, Device
		if len(f) >= 4 && f[0] == a.ip && f[2] != "0x0" {
			return f[3]
		}
	}
	return ""
}

func (a *arpWatch) mark(fault time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fault, a.atFault = fault, a.cur
}

// history returns the changes from 2s before the fault on.
func (a *arpWatch) history() []arpChange {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []arpChange
	for _, c := range a.changes {
		if c.at.After(a.fault.Add(-2 * time.Second)) {
			out = append(out, arpChange{ms(c.at.Sub(a.fault)), c.mac})
		}
	}
	return out
}

func (a *arpWatch) moved() (float64, string, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.movedAt.IsZero() {
		return -1, a.atFault, ""
	}
	return ms(a.movedAt.Sub(a.fault)), a.atFault, a.movedTo
}
