package sched

// ovf, overflow, keeps sending connections to the usable backend of
// highest weight until its active connections exceed its weight, then to
// the next highest, as IPVS ovf does (see highestWeight).
func init() { register("ovf", newHighestWeight(true)) }
