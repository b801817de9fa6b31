package sched

// dh, destination hashing, is sh keyed on the destination: every
// connection to one destination goes to the same backend, which suits
// caches and firewalls that should see all of a destination's traffic.
func init() {
	register("dh", func(bs []Backend) Scheduler {
		return newHashSlots(bs, func(k Key) uint64 { return k.Dest })
	})
}
