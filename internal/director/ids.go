package director

// ids hands out small integer ids (service ring indexes, slots, persist
// groups) below a limit. A released id is reused last: ids go back to the
// end of a FIFO, so a slot id that stale flow entries may still name is
// the last one handed to another backend.
type ids struct {
	next, limit uint32
	free        []uint32
}

func newIDs(first, limit uint32) *ids { return &ids{next: first, limit: limit} }

// get returns an unused id, or false when all are in use.
func (a *ids) get() (uint32, bool) {
	if len(a.free) > 0 {
		id := a.free[0]
		a.free = a.free[1:]
		return id, true
	}
	if a.next >= a.limit {
		return 0, false
	}
	a.next++
	return a.next - 1, true
}

// put releases id.
func (a *ids) put(id uint32) { a.free = append(a.free, id) }

// inUse is the number of ids handed out and not released.
func (a *ids) inUse(first uint32) int { return int(a.next-first) - len(a.free) }
