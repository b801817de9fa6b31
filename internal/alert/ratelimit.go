package alert

import "time"

// limiter is a token bucket holding per tokens and refilling per a minute,
// kept as the generic cell rate algorithm: tat is when the bucket will be
// full again. Integer durations keep it exact (three a minute is one every
// 20s, not 0.333... of a token a second). Owned by the Run goroutine.
type limiter struct {
	per int
	tat time.Time
}

// allow takes a token at now if there is one. A changed rate starts over
// with a full bucket.
func (l *limiter) allow(now time.Time, per int) bool {
	if per != l.per {
		l.per, l.tat = per, time.Time{}
	}
	interval := time.Minute / time.Duration(per)
	tat := l.tat
	if tat.Before(now) {
		tat = now
	}
	if tat.Sub(now) > time.Duration(per-1)*interval {
		return false
	}
	l.tat = tat.Add(interval)
	return true
}
