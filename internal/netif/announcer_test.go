package netif

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var netipCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// startFake returns an Announcer on a fakeSystem, closed at the end of
// the synctest bubble it is made in.
func startFake(t *testing.T, opts Options) (*Announcer, *fakeSystem) {
	t.Helper()
	opts.Interface = "eth0"
	if err := opts.validate(); err != nil {
		t.Fatal(err)
	}
	f := newFakeSystem()
	a := newAnnouncer(opts, f)
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, f
}

// offsets are the send times of frames relative to t0, with their VIPs.
func offsets(t0 time.Time, fs []sentFrame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.at.Sub(t0).String() + " " + f.vip.String()
	}
	return out
}

func TestAcquireAddsAndRepeats(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, f := startFake(t, Options{Prefixes: []netip.Prefix{
			netip.MustParsePrefix("192.168.0.105/24"),
			netip.MustParsePrefix("2001:db8::5/64"),
		}})
		t0 := time.Now()
		vips := addrs("192.168.0.105", "192.168.0.106", "2001:db8::5", "2001:db8::6")
		if err := a.Acquire(t.Context(), vips); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		// The first round is out before Acquire returns.
		if got := len(f.sentSince(0)); got != 4 {
			t.Errorf("%d frames sent by Acquire, want 4", got)
		}
		wantPrefixes := map[netip.Addr]netip.Prefix{
			vips[0]: netip.MustParsePrefix("192.168.0.105/24"),
			vips[1]: netip.MustParsePrefix("192.168.0.106/32"),
			vips[2]: netip.MustParsePrefix("2001:db8::5/64"),
			vips[3]: netip.MustParsePrefix("2001:db8::6/128"),
		}
		if diff := cmp.Diff(wantPrefixes, f.prefixes(), netipCmp); diff != "" {
			t.Errorf("addresses (-want +got):\n%s", diff)
		}
		wantLabels := map[netip.Addr]string{vips[0]: "eth0:fulcrum", vips[1]: "eth0:fulcrum", vips[2]: "", vips[3]: ""}
		if diff := cmp.Diff(wantLabels, f.labelMap(), netipCmp); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}

		time.Sleep(time.Second)
		var want []string
		for _, at := range []string{"0s", "10ms", "20ms"} {
			for _, v := range vips {
				want = append(want, at+" "+v.String())
			}
		}
		if diff := cmp.Diff(want, offsets(t0, f.sentSince(0))); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
		want4, want6 := uint64(2*DefaultRepeat), uint64(2*DefaultRepeat)
		if diff := cmp.Diff(Counters{Added: 4, ARPSent: want4, NASent: want6}, a.Counters()); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})
}

func TestReleaseStopsAnnouncing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, f := startFake(t, Options{Repeat: 5, RepeatInterval: 100 * time.Millisecond, Refresh: time.Second})
		t0 := time.Now()
		vips := addrs("10.0.0.1", "10.0.0.2")
		if err := a.Acquire(t.Context(), vips); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
		// One address goes; the other's repeats and refreshes go on.
		if err := a.Release(t.Context(), vips[:1]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*time.Second + 500*time.Millisecond)
		want := []string{
			"0s 10.0.0.1", "0s 10.0.0.2",
			"100ms 10.0.0.1", "100ms 10.0.0.2",
			"200ms 10.0.0.2", "300ms 10.0.0.2", "400ms 10.0.0.2",
			"1s 10.0.0.2", "2s 10.0.0.2",
		}
		if diff := cmp.Diff(want, offsets(t0, f.sentSince(0))); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
		if _, ok := f.prefixes()[vips[0]]; ok {
			t.Errorf("%v still on the link", vips[0])
		}

		n := len(f.sentSince(0))
		if err := a.Release(t.Context(), vips[1:]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if got := f.sentSince(n); len(got) != 0 {
			t.Errorf("sent after Release: %v", offsets(t0, got))
		}
		if got := len(f.prefixes()); got != 0 {
			t.Errorf("%d addresses left", got)
		}
	})
}

func TestIdempotent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, f := startFake(t, Options{Repeat: 1})
		vips := addrs("10.0.0.1", "fd00::1")
		for i := range 2 {
			if err := a.Acquire(t.Context(), vips); err != nil {
				t.Fatalf("Acquire %d: %v", i+1, err)
			}
		}
		if got := len(f.prefixes()); got != 2 {
			t.Errorf("%d addresses, want 2", got)
		}
		for i := range 2 {
			if err := a.Release(t.Context(), vips); err != nil {
				t.Fatalf("Release %d: %v", i+1, err)
			}
		}
		// Both Acquires announce: the second may be a new master's after
		// a Release that could not remove the address.
		want := Counters{Added: 2, Removed: 2, ARPSent: 2, NASent: 2}
		if diff := cmp.Diff(want, a.Counters()); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
	})
}

func TestAnnounce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, f := startFake(t, Options{Repeat: 2})
		held, other := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9")
		if err := a.Acquire(t.Context(), []netip.Addr{held}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		t0, n := time.Now(), len(f.sentSince(0))
		err := a.Announce(t.Context(), []netip.Addr{held, other})
		if err == nil || !strings.Contains(err.Error(), "announce 10.0.0.9 on eth0: not held") {
			t.Errorf("Announce of an address not held: got error %v", err)
		}
		time.Sleep(time.Second)
		want := []string{"0s 10.0.0.1", "10ms 10.0.0.1"}
		if diff := cmp.Diff(want, offsets(t0, f.sentSince(n))); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
	})
}

func TestNoAnnouncementsWithoutARP(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, f := startFake(t, Options{Refresh: time.Second})
		f.set(func(f *fakeSystem) { f.l.announce = false })
		if err := a.Acquire(t.Context(), addrs("10.0.0.1", "fd00::1")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		if got := f.sentSince(0); len(got) != 0 {
			t.Errorf("sent %d frames on a link without ARP", len(got))
		}
		if got := len(f.prefixes()); got != 2 {
			t.Errorf("%d addresses, want 2", got)
		}
	})
}

func TestRouterFlag(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a, f := startFake(t, Options{Repeat: 1})
		f.set(func(f *fakeSystem) { f.l.router = true })
		if err := a.Acquire(t.Context(), addrs("fd00::1")); err != nil {
			t.Fatal(err)
		}
		sent := f.sentSince(0)
		if len(sent) != 1 || sent[0].frame[14+40+4] != naFlagRouter|naFlagOverride {
			t.Errorf("sent %v, want one NA with Router and Override", sent)
		}
	})
}

func TestFailures(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		rec := &logRecorder{}
		a, f := startFake(t, Options{Refresh: time.Second, Log: slog.New(rec)})
		vips := addrs("10.0.0.1")

		f.set(func(f *fakeSystem) { f.sendErr = syscall.ENETDOWN })
		err := a.Acquire(t.Context(), vips)
		if !errors.Is(err, syscall.ENETDOWN) || !strings.Contains(err.Error(), "netif: announce 10.0.0.1 on eth0") {
			t.Errorf("Acquire on a link that is down: got %v", err)
		}
		if _, ok := f.prefixes()[vips[0]]; !ok {
			t.Error("address not added when announcing it failed")
		}
		// Repeats and refreshes fail in the background: one warning.
		time.Sleep(3500 * time.Millisecond)
		if got := rec.count("WARN announcing virtual addresses failed"); got != 1 {
			t.Errorf("warned %d times, want once", got)
		}
		f.set(func(f *fakeSystem) { f.sendErr = nil })
		time.Sleep(time.Second)
		if got := rec.count("INFO announcing virtual addresses again"); got != 1 {
			t.Errorf("recovery logged %d times, want once", got)
		}
		// 1 from Acquire, 2 repeats, 3 refreshes.
		if got := a.Counters().Errors; got != 6 {
			t.Errorf("%d errors counted, want 6", got)
		}

		f.set(func(f *fakeSystem) { f.addErr = syscall.EPERM })
		if err := a.Acquire(t.Context(), addrs("10.0.0.2")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("Acquire without permission: got %v", err)
		}

		f.set(func(f *fakeSystem) { f.gone = true })
		if err := a.Acquire(t.Context(), vips); !errors.Is(err, ErrNoInterface) ||
			err.Error() != "netif: acquire: interface eth0: no such interface" {
			t.Errorf("Acquire on a missing interface: got %v", err)
		}
		before := a.Counters().Errors
		if err := a.Release(t.Context(), vips); err != nil {
			t.Errorf("Release on a missing interface: %v", err)
		}
		if got := a.Counters().Errors; got != before {
			t.Errorf("Release on a missing interface counted %d errors", got-before)
		}

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		f.set(func(f *fakeSystem) { f.gone, f.addErr = false, nil })
		if err := a.Acquire(ctx, addrs("10.0.0.3")); !errors.Is(err, context.Canceled) {
			t.Errorf("Acquire with a cancelled context: got %v", err)
		}
		if _, ok := f.prefixes()[netip.MustParseAddr("10.0.0.3")]; ok {
			t.Error("Acquire added an address after its context was cancelled")
		}
	})
}

func TestClose(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSystem()
		a := newAnnouncer(Options{Interface: "eth0", Refresh: time.Second}, f)
		vips := addrs("10.0.0.1")
		if err := a.Acquire(t.Context(), vips); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		n := len(f.sentSince(0))
		time.Sleep(3 * time.Second)
		if got := f.sentSince(n); len(got) != 0 {
			t.Errorf("%d frames sent after Close", len(got))
		}
		if _, ok := f.prefixes()[vips[0]]; !ok {
			t.Error("Close removed the address")
		}
		if err := a.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close: got %v, want ErrClosed", err)
		}
		for name, fn := range map[string]func(context.Context, []netip.Addr) error{
			"Acquire": a.Acquire, "Release": a.Release, "Announce": a.Announce,
		} {
			if err := fn(t.Context(), vips); !errors.Is(err, ErrClosed) {
				t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
			}
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts Options
		want []string // substrings of the error; none: valid
	}{
		{name: "minimal", opts: Options{Interface: "eth0"}},
		{
			name: "prefixes",
			opts: Options{Interface: "eth0", Prefixes: []netip.Prefix{
				netip.MustParsePrefix("192.168.0.105/24"), netip.MustParsePrefix("fd00::5/64"),
			}},
		},
		{
			name: "everything wrong at once",
			opts: Options{Repeat: -1, RepeatInterval: -time.Second, Refresh: -time.Second, Prefixes: []netip.Prefix{
				{},
				netip.MustParsePrefix("::ffff:10.0.0.1/120"),
				netip.MustParsePrefix("10.0.0.1/24"),
				netip.MustParsePrefix("10.0.0.1/32"),
			}},
			want: []string{
				"no interface", "repeat -1 is negative", "repeat interval -1s is negative",
				"refresh -1s is negative", "prefix invalid Prefix", "prefix ::ffff:10.0.0.1/120",
				"address 10.0.0.1 listed twice",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.opts.validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("got %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ifname, vip, want string
	}{
		{"eth0", "10.0.0.1", "eth0:fulcrum"},
		{"enp0s31f", "10.0.0.1", ""},               // 16 bytes with the suffix
		{"enp0s31", "10.0.0.1", "enp0s31:fulcrum"}, // exactly 15
		{"eth0", "fd00::1", ""},
	}
	for _, tt := range tests {
		if got := label(tt.ifname, netip.MustParseAddr(tt.vip)); got != tt.want {
			t.Errorf("label(%q, %s) = %q, want %q", tt.ifname, tt.vip, got, tt.want)
		}
	}
}
