package sched

// wlc, weighted least-connection, picks the least active/weight. It is
// ipvsadm's default: a backend of weight 2 is expected to carry twice the
// connections of one of weight 1.
func init() { register("wlc", newLeastConn(byActivePerWeight)) }
