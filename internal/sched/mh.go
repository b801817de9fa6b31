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
// IPVS hashes the source port as well under its mh-port flag; fulcrum's
// schedulers see the client's address only, so mh, like sh, hashes the
// address alone.
func init() {
	register("mh", func(bs []Backend) Scheduler { return newMaglevOn(bs, configuredWeight) })
}
