package sched

// sed, shortest expected delay, picks the least (active+1)/weight: the
// queue a new connection would join, including itself. Unlike wlc it
// prefers a heavier backend when both are idle or equally loaded.
func init() { register("sed", newLeastConn(byExpectedDelay)) }
