package sched

// mh is IPVS's Maglev hashing scheduler (ip_vs_mh) with its mh-fallback
// flag: the Maglev table of maglev.go over the client address, built from
// the configured weights rather than the effective ones. A backend that
// goes down or fills up keeps its table entries; its clients are rehashed
// over the usable backends while it is out and return when it is back, and
// no other client moves. maglev instead rebuilds the table without the
// backend, which moves a few other clients too (0.2% of them with ten
// backends) but spreads the stranded ones in exact proportion to weight.
// Both rebuild on a weight change, as IPVS does on ipvsadm -e -w.
//
// Like sh, it hashes Key.Source, which the caller builds from the client's
// address, or its address and port for a service with hash_port (IPVS's
// mh-port flag).
func init() {
	register("mh", func(bs []Backend) Scheduler { return newMaglevOn(bs, configuredWeight) })
}
