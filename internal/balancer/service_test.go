package balancer

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func backends(n int, port0 uint16) []*Backend {
	bs := make([]*Backend, n)
	for i := range bs {
		bs[i] = NewBackend(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), port0+uint16(i)), 1, 0)
	}
	return bs
}

func newTestService(t *testing.T, algo string, primary, backup []*Backend, fallback *Backend, p *Persistence) *Service {
	t.Helper()
	svc, err := NewService(ServiceSpec{Name: "t", Protocol: "tcp", Scheduler: algo}, primary, backup, fallback, p)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	return svc
}

var (
	client = netip.MustParseAddr("192.0.2.10")
	vip    = netip.MustParseAddr("198.51.100.1")
)

func TestPickOrder(t *testing.T) {
	t.Parallel()
	primary, backup := backends(2, 80), backends(1, 90)
	fallback := NewBackend(netip.MustParseAddrPort("127.0.0.1:8080"), 1, 0)
	svc := newTestService(t, "rr", primary, backup, fallback, nil)

	pick := func() *Backend {
		t.Helper()
		b, err := svc.Pick(client, vip, &Tried{})
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		return b
	}
	if b := pick(); b != primary[0] && b != primary[1] {
		t.Fatalf("got %v, want a primary", b.Addr)
	}
	primary[0].SetHealthy(false)
	primary[1].SetWeight(0) // quiesced: no new connections
	if b := pick(); b != backup[0] {
		t.Fatalf("primaries unavailable: got %v, want backup %v", b.Addr, backup[0].Addr)
	}
	backup[0].SetHealthy(false)
	if b := pick(); b != fallback {
		t.Fatalf("all unavailable: got %v, want fallback", b.Addr)
	}
	fallback.SetHealthy(false)
	if _, err := svc.Pick(client, vip, &Tried{}); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("fallback down too: got %v, want ErrNoBackend", err)
	}
	fallback.SetHealthy(true)
	svc2 := newTestService(t, "rr", primary, backup, nil, nil)
	if _, err := svc2.Pick(client, vip, &Tried{}); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("no fallback: got %v, want ErrNoBackend", err)
	}
	primary[1].SetWeight(1)
	if b := pick(); b != primary[1] {
		t.Fatalf("weight restored: got %v, want %v", b.Addr, primary[1].Addr)
	}
}

func TestPickSkipsTried(t *testing.T) {
	t.Parallel()
	for _, algo := range []string{"rr", "sh", "maglev", "wlc"} {
		t.Run(algo, func(t *testing.T) {
			t.Parallel()
			bs := backends(3, 80)
			svc := newTestService(t, algo, bs, nil, nil, nil)
			var tried Tried
			seen := map[*Backend]bool{}
			for range 3 {
				b, err := svc.Pick(client, vip, &tried)
				if err != nil {
					t.Fatalf("Pick after %d tries: %v", tried.Len(), err)
				}
				if seen[b] {
					t.Fatalf("got %v again, want an untried backend", b.Addr)
				}
				seen[b] = true
				tried.Add(b)
			}
			if _, err := svc.Pick(client, vip, &tried); !errors.Is(err, ErrNoBackend) {
				t.Fatalf("all tried: got %v, want ErrNoBackend", err)
			}
		})
	}
}

func TestPickMaxConnections(t *testing.T) {
	t.Parallel()
	bs := backends(2, 80)
	bs[0].SetMaxConns(1)
	svc := newTestService(t, "lc", bs, nil, nil, nil)
	bs[0].Acquire()
	for range 10 {
		b, err := svc.Pick(client, vip, &Tried{})
		if err != nil || b != bs[1] {
			t.Fatalf("backend 0 full: got %v %v, want %v", b, err, bs[1].Addr)
		}
	}
	bs[0].Release(10, 20)
	st := bs[0].Stats()
	if st.Active != 0 || st.Total != 1 || st.BytesIn != 10 || st.BytesOut != 20 {
		t.Fatalf("stats: got %+v, want active 0 total 1 in 10 out 20", st)
	}
}

func TestPersistence(t *testing.T) {
	t.Parallel()
	bs := backends(4, 80)
	p := NewPersistence(time.Minute, 24, 64, 1<<16)
	svc := newTestService(t, "rr", bs, nil, nil, p)

	first, _ := svc.Pick(netip.MustParseAddr("192.0.2.10"), vip, &Tried{})
	for i := range 20 {
		// Same /24: same backend, although rr would rotate.
		c := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		if b, _ := svc.Pick(c, vip, &Tried{}); b != first {
			t.Fatalf("client %v: got %v, want persistent %v", c, b.Addr, first.Addr)
		}
	}
	// IPv6 clients group by /64.
	v6a, _ := svc.Pick(netip.MustParseAddr("2001:db8::1"), vip, &Tried{})
	if b, _ := svc.Pick(netip.MustParseAddr("2001:db8::ffff"), vip, &Tried{}); b != v6a {
		t.Fatalf("same /64: got %v, want %v", b.Addr, v6a.Addr)
	}
	// The pinned backend goes down: the client is re-pinned elsewhere and
	// stays there when the old one returns.
	first.SetHealthy(false)
	moved, _ := svc.Pick(client, vip, &Tried{})
	if moved == first {
		t.Fatalf("pinned backend down: got it anyway")
	}
	first.SetHealthy(true)
	if b, _ := svc.Pick(client, vip, &Tried{}); b != moved {
		t.Fatalf("after recovery: got %v, want re-pinned %v", b.Addr, moved.Addr)
	}
	// A retry after a failed connect must not return the pinned backend.
	var tried Tried
	tried.Add(moved)
	if b, _ := svc.Pick(client, vip, &tried); b == moved {
		t.Fatalf("retry: got the tried backend %v again", b.Addr)
	}
}

func TestPersistenceExpiry(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	p := NewPersistence(time.Minute, 32, 128, 1<<10)
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	b := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	p.Store(client, b)
	advance(50 * time.Second)
	if got := p.Lookup(client); got != b {
		t.Fatalf("before timeout: got %v, want %v", got, b)
	}
	// The lookup restarted the timer: 50s later it is still there.
	advance(50 * time.Second)
	if got := p.Lookup(client); got != b {
		t.Fatalf("timer restarted by lookup: got %v, want %v", got, b)
	}
	advance(61 * time.Second)
	if got := p.Lookup(client); got != nil {
		t.Fatalf("after timeout: got %v, want nil", got)
	}
	if n := p.Sweep(); n != 1 {
		t.Fatalf("Sweep: got %d dropped, want 1", n)
	}
	if n := p.Len(); n != 0 {
		t.Fatalf("Len after sweep: got %d, want 0", n)
	}
}

func TestPersistenceBounded(t *testing.T) {
	t.Parallel()
	const max = 64 * 4
	p := NewPersistence(time.Hour, 32, 128, max)
	b := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	for i := range 100_000 {
		p.Store(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), b)
	}
	if n := p.Len(); n > max {
		t.Fatalf("Len: got %d, want <= %d", n, max)
	}
	// The newest entry always survives its own insertion.
	const n = 99_999
	last := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8 & 0xff), byte(n & 0xff)})
	if p.Lookup(last) != b {
		t.Fatalf("newest entry evicted")
	}
}

func TestPickConcurrent(t *testing.T) {
	t.Parallel()
	bs := backends(5, 80)
	svc := newTestService(t, "wlc", bs, nil, nil, NewPersistence(time.Minute, 24, 64, 1<<12))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				c := netip.AddrFrom4([4]byte{10, byte(g), byte(i >> 8), byte(i)})
				b, err := svc.Pick(c, vip, &Tried{})
				if err != nil {
					t.Errorf("Pick: %v", err)
					return
				}
				b.Acquire()
				if i%7 == 0 {
					bs[i%5].SetWeight(i % 3)
				}
				b.Release(1, 1)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkPick(b *testing.B) {
	bs := backends(10, 80)
	svc, err := NewService(ServiceSpec{Name: "b", Scheduler: "wlc"}, bs, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var tried Tried
		if _, err := svc.Pick(client, vip, &tried); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPickPersistent(b *testing.B) {
	bs := backends(10, 80)
	svc, err := NewService(ServiceSpec{Name: "b", Scheduler: "wlc"}, bs, nil, nil, NewPersistence(time.Hour, 24, 64, 1<<16))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var tried Tried
		if _, err := svc.Pick(client, vip, &tried); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSlowStart(t *testing.T) {
	t.Parallel()
	b := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 50, 0)
	b.SlowStart(400 * time.Millisecond)
	if !b.Ramping() {
		t.Fatal("Ramping: got false right after SlowStart")
	}
	if w := b.Weight(); w < 5 || w > 15 {
		t.Errorf("weight at the start of the ramp: got %d, want about a tenth of 50", w)
	}
	prev := 0
	deadline := time.Now().Add(5 * time.Second)
	for b.Ramping() && time.Now().Before(deadline) {
		w := b.Weight()
		if w < prev {
			t.Fatalf("weight went down during the ramp: %d after %d", w, prev)
		}
		prev = w
		time.Sleep(5 * time.Millisecond)
	}
	if w := b.Weight(); w != 50 {
		t.Errorf("weight after the ramp: got %d, want 50", w)
	}
	b.SlowStart(time.Hour)
	b.SlowStart(0)
	if w := b.Weight(); w != 50 || b.Ramping() {
		t.Errorf("ramp cancelled: got weight %d ramping %v, want 50 false", w, b.Ramping())
	}
	// A weight-1 backend stays pickable throughout.
	one := NewBackend(netip.MustParseAddrPort("10.0.0.2:80"), 1, 0)
	one.SlowStart(time.Hour)
	if w := one.Weight(); w != 1 {
		t.Errorf("weight-1 ramp: got %d, want 1", w)
	}
}

type countingObserver struct{ failed, ok atomic.Int64 }

func (o *countingObserver) Failed(string) { o.failed.Add(1) }
func (o *countingObserver) Succeeded()    { o.ok.Add(1) }

func TestObserver(t *testing.T) {
	t.Parallel()
	b := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	b.ConnectFailed() // no observer: only counted
	o := &countingObserver{}
	b.SetObserver(o)
	b.ConnectFailed()
	b.Connected()
	b.Connected()
	b.SetObserver(nil)
	b.ConnectFailed()
	if o.failed.Load() != 1 || o.ok.Load() != 2 {
		t.Errorf("observer: got %d failed %d ok, want 1 and 2", o.failed.Load(), o.ok.Load())
	}
	if got := b.Stats().ConnectFailed; got != 3 {
		t.Errorf("connect failures: got %d, want 3", got)
	}
}

func TestAdminStateAvailability(t *testing.T) {
	t.Parallel()
	a := NewBackend(netip.MustParseAddrPort("10.0.0.1:80"), 1, 0)
	b := NewBackend(netip.MustParseAddrPort("10.0.0.2:80"), 1, 0)
	svc, err := NewService(ServiceSpec{Name: "web", Scheduler: "rr"}, []*Backend{a, b}, nil, nil,
		NewPersistence(time.Minute, 32, 128, 1024))
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddr("192.0.2.7")
	first, err := svc.Pick(client, netip.Addr{}, &Tried{})
	if err != nil {
		t.Fatal(err)
	}
	other := a
	if first == a {
		other = b
	}
	for _, st := range []AdminState{AdminDrain, AdminMaint} {
		first.SetAdminState(st)
		if first.Available() {
			t.Errorf("%v: Available() = true, want false", st)
		}
		if !first.Healthy() {
			t.Errorf("%v: Healthy() = false: the admin state must not touch health", st)
		}
		if got := first.Evicted(); got != (st == AdminMaint) {
			t.Errorf("%v: Evicted() = %v, want %v", st, got, st == AdminMaint)
		}
		// Not even the persistent client goes back to it.
		for range 4 {
			got, err := svc.Pick(client, netip.Addr{}, &Tried{})
			if err != nil || got != other {
				t.Fatalf("%v: Pick = %v, %v; want %v", st, got, err, other.Addr)
			}
		}
	}
	if prev := first.SetAdminState(AdminReady); prev != AdminMaint {
		t.Errorf("SetAdminState returned %v, want maint", prev)
	}
	if !first.Available() {
		t.Error("ready again: Available() = false")
	}
	for _, s := range []string{"ready", "drain", "maint"} {
		st, err := ParseAdminState(s)
		if err != nil || st.String() != s {
			t.Errorf("ParseAdminState(%q) = %v, %v", s, st, err)
		}
	}
	if _, err := ParseAdminState("down"); err == nil {
		t.Error(`ParseAdminState("down"): got nil error`)
	}
}
