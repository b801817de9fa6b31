// Package replay is the anti-replay window of RFC 4303 section 3.4.3
// over a sender's sequence numbers, shared by the authenticated VRRP
// adverts and the directors' flow sync.
package replay

// Size is how many sequence numbers at and below the highest accepted
// one a Window remembers.
const Size = 64

// Window is one sender's state: the highest sequence number accepted and
// a bitmap of the Size numbers at and below it. A number above the top
// is new; one inside the window is new once; one below it is a replay
// (or too late to tell). The zero Window accepts any first number. A
// Window is not safe for concurrent use.
type Window struct {
	top     uint64
	seen    uint64 // bit i: top-i was accepted
	started bool
}

// Accept reports whether seq is new, and records it.
func (w *Window) Accept(seq uint64) bool {
	switch {
	case !w.started:
		w.top, w.seen, w.started = seq, 1, true
		return true
	case seq > w.top:
		if d := seq - w.top; d < Size {
			w.seen = w.seen<<d | 1
		} else {
			w.seen = 1
		}
		w.top = seq
		return true
	case w.top-seq >= Size:
		return false
	}
	bit := uint64(1) << (w.top - seq)
	if w.seen&bit != 0 {
		return false
	}
	w.seen |= bit
	return true
}
