package sched

// nq, never queue, sends a connection to an idle backend whenever there is
// one, whatever the weights, and otherwise behaves like sed.
func init() { register("nq", newLeastConn(byNeverQueue)) }
