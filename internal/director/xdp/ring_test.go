//go:build linux

package xdp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSetRingEntries: a partial write changes the given entries of the
// given ring and nothing else; a bad one writes nothing.
func TestSetRingEntries(t *testing.T) {
	l := newLab(t, Options{MaxServices: 3, MaxSlots: 8})
	must(t, l.p.SetRing(0, fill(1)))
	must(t, l.p.SetRing(1, fill(2)))
	must(t, l.p.SetRing(2, fill(3)))
	want := fill(2)
	idx := []uint32{0, 1, 7, RingSize / 2, RingSize - 1}
	slots := []uint32{5, NoSlot, 7, 0, 6}
	for i, e := range idx {
		want[e] = slots[i]
	}
	must(t, l.p.SetRingEntries(1, idx, slots))
	must(t, l.p.SetRingEntries(1, nil, nil))
	for _, bad := range []struct {
		name       string
		id         uint32
		idx, slots []uint32
	}{
		{"entry out of range", 1, []uint32{3, RingSize}, []uint32{4, 4}},
		{"slot out of range", 1, []uint32{3, 4}, []uint32{4, 8}},
		{"lengths differ", 1, []uint32{3, 4}, []uint32{4}},
		{"ring out of range", 3, []uint32{3}, []uint32{4}},
	} {
		if err := l.p.SetRingEntries(bad.id, bad.idx, bad.slots); err == nil {
			t.Errorf("%s: got no error", bad.name)
		}
	}
	for id, w := range [][]uint32{fill(1), want, fill(3)} {
		got, err := l.p.Ring(uint32(id))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(w, got); d != "" {
			t.Errorf("ring %d (-want +got):\n%s", id, d)
		}
	}
	if _, err := l.p.Ring(3); err == nil {
		t.Error("ring 3 of 3: got no error")
	}
}
