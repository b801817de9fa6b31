package director

import (
	"errors"
	"slices"
	"testing"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

// ringCounter counts the ring entries written through it.
type ringCounter struct {
	forwarder
	entries int
}

func (c *ringCounter) SetRing(id uint32, ring []uint32) error {
	c.entries += len(ring)
	return c.forwarder.SetRing(id, ring)
}

func (c *ringCounter) SetRingEntries(id uint32, idx, slots []uint32) error {
	c.entries += len(idx)
	return c.forwarder.SetRingEntries(id, idx, slots)
}

// ringSteps changes a service of ten backends (and two backups) in the
// ways a ring changes and after each checks that the ring the forwarder
// holds, read by kernel, is the one the control plane computed, and that
// a change of a few entries wrote only those while one of most entries
// wrote the whole ring.
func ringSteps(t *testing.T, l *lab, kernel func(id uint32) []uint32) {
	t.Helper()
	c := &ringCounter{forwarder: l.d.fw}
	l.d.fw = c
	bs := l.backends(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	backup := l.backends(21, 1, 1)
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, backup, nil))
	var prev []uint32
	check := func(step string, partial bool) {
		t.Helper()
		s.d.mu.Lock()
		want := slices.Clone(s.ring)
		s.d.mu.Unlock()
		if n := changed(want, kernel(s.id)); n != 0 {
			t.Fatalf("%s: the forwarder's ring differs from the computed one in %d entries", step, n)
		}
		n, wrote := changed(prev, want), c.entries
		switch {
		case partial && (n == 0 || n >= RingSize/2):
			t.Fatalf("%s: %d entries changed: not a partial change", step, n)
		case partial && wrote != n:
			t.Errorf("%s: got %d entries written, want the %d changed", step, wrote, n)
		case !partial && wrote != RingSize:
			t.Errorf("%s: got %d entries written, want the whole ring (%d changed)", step, wrote, n)
		}
		t.Logf("%s: %d entries changed, %d written", step, n, wrote)
		prev, c.entries = want, 0
	}
	update := func(primary []*balancer.Backend) {
		t.Helper()
		if err := s.Update(balancerService(t, "maglev", primary, backup, nil)); err != nil {
			t.Fatal(err)
		}
	}
	check("added", false)
	bs[4].SetHealthy(false)
	refresh(t, s)
	check("one of ten down", true)
	bs[4].SetHealthy(true)
	refresh(t, s)
	check("back up", true)
	bs[0].SetWeight(3)
	refresh(t, s)
	check("a weight changed", true)
	update(bs[:9])
	check("one removed", true)
	bs = append(bs[:9:9], l.backends(11, 1)...)
	update(bs)
	check("one added", true)
	setHealthy(bs, false)
	refresh(t, s)
	check("primaries down: the backups", false)
	setHealthy(backup, false)
	refresh(t, s)
	check("nothing usable", false)
	setHealthy(backup, true)
	refresh(t, s)
	check("the backups again", false)
	setHealthy(bs, true)
	refresh(t, s)
	check("the primaries again", false)
}

func setHealthy(bs []*balancer.Backend, up bool) {
	for _, b := range bs {
		b.SetHealthy(up)
	}
}

// TestRingPartialWrites: through a sequence of changes, partial and
// whole, the fake kernel's ring stays the computed one.
func TestRingPartialWrites(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	ringSteps(t, l, l.fw.ring)
}

// TestRingWriteFailure: a ring write that fails halfway leaves the
// kernel's ring unknown: the next write is whole, even when the ring
// computed then is the one from before the failure.
func TestRingWriteFailure(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	bs := l.backends(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
	s := l.add(t, spec("web", "maglev"), balancerService(t, "maglev", bs, nil, nil))
	before := l.fw.ring(s.id)
	l.fw.mu.Lock()
	l.fw.ringErr = errors.New("injected failure")
	l.fw.mu.Unlock()
	bs[4].SetHealthy(false)
	refresh(t, s)
	if changed(before, l.fw.ring(s.id)) == 0 {
		t.Fatal("the failed write wrote nothing")
	}
	bs[4].SetHealthy(true)
	refresh(t, s)
	if n := changed(before, l.fw.ring(s.id)); n != 0 {
		t.Errorf("back to the first ring after a failed write: %d entries differ from it, want 0", n)
	}
}
