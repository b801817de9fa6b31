package netif

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// fakeSystem is a link in memory: its addresses, and every frame sent,
// with the (synctest) time it went.
type fakeSystem struct {
	mu      sync.Mutex
	l       linkInfo
	gone    bool // the interface does not exist
	addrs   map[netip.Addr]netip.Prefix
	labels  map[netip.Addr]string
	sent    []sentFrame
	sendErr error
	addErr  error
	closed  bool
}

type sentFrame struct {
	at    time.Time
	vip   netip.Addr
	frame []byte
}

func newFakeSystem() *fakeSystem {
	return &fakeSystem{
		l: linkInfo{
			name:     "eth0",
			index:    2,
			mac:      net.HardwareAddr{0x02, 0, 0x5e, 0, 0, 1},
			announce: true,
		},
		addrs:  make(map[netip.Addr]netip.Prefix),
		labels: make(map[netip.Addr]string),
	}
}

func (f *fakeSystem) link(name string) (linkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gone || name != f.l.name {
		return linkInfo{}, fmt.Errorf("interface %s: %w", name, ErrNoInterface)
	}
	return f.l, nil
}

func (f *fakeSystem) addAddr(_ linkInfo, p netip.Prefix, label string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.addErr != nil {
		return false, f.addErr
	}
	if _, ok := f.addrs[p.Addr()]; ok {
		return false, nil
	}
	f.addrs[p.Addr()] = p
	f.labels[p.Addr()] = label
	return true, nil
}

func (f *fakeSystem) delAddr(_ linkInfo, p netip.Prefix) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.addrs[p.Addr()]; !ok {
		return false, nil
	}
	delete(f.addrs, p.Addr())
	delete(f.labels, p.Addr())
	return true, nil
}

func (f *fakeSystem) send(_ linkInfo, frame []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sendErr != nil {
		return f.sendErr
	}
	var vip netip.Addr
	switch frame[12] {
	case 0x08: // ARP: the sender protocol address
		vip = netip.AddrFrom4([4]byte(frame[28:32]))
	case 0x86: // NA: the target
		vip = netip.AddrFrom16([16]byte(frame[62:78]))
	}
	f.sent = append(f.sent, sentFrame{at: time.Now(), vip: vip, frame: slices.Clone(frame)})
	return nil
}

func (f *fakeSystem) close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("closed twice")
	}
	f.closed = true
	return nil
}

func (f *fakeSystem) set(fn func(f *fakeSystem)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// sentSince is what was sent from index i on.
func (f *fakeSystem) sentSince(i int) []sentFrame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent[min(i, len(f.sent)):])
}

func (f *fakeSystem) prefixes() map[netip.Addr]netip.Prefix {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.addrs)
}

func (f *fakeSystem) labelMap() map[netip.Addr]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.labels)
}

// logRecorder keeps the messages logged at each level.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Level.String()+" "+rec.Message)
	return nil
}

func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *logRecorder) WithGroup(string) slog.Handler      { return r }

func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}
