package flowsync

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Restarts of the kernel's new-flow feed (Options.Events) after it
// failed: after DefaultFeedRetry, doubling up to DefaultFeedRetryMax.
const (
	DefaultFeedRetry    = time.Second
	DefaultFeedRetryMax = 30 * time.Second
)

// States of the new-flow feed (FeedStatus.State).
const (
	FeedOff        = "off"        // not read: no Events (the Syncer sends what scans find only), or Run not started
	FeedRunning    = "running"    // flows are read as the kernel creates them
	FeedRestarting = "restarting" // the feed failed; read again at FeedStatus.RetryAt
)

// FeedStatus is the state of the kernel's new-flow feed.
type FeedStatus struct {
	// State is FeedOff, FeedRunning or FeedRestarting.
	State string
	// Failures counts the times the feed stopped with an error; LastError
	// and LastFailure are the last one's (kept once it runs again).
	Failures    uint64
	LastError   string
	LastFailure time.Time
	// RetryAt is when the feed is read again, while FeedRestarting.
	RetryAt time.Time
}

// feed reads the kernel's new flows until ctx ends, reading again after
// each failure: the first after Options.FeedRetry, each next one after
// twice as long up to FeedRetryMax. A feed that ran FeedRetryMax before
// it failed starts again from FeedRetry. Flows the kernel created
// meanwhile are not sent when created (as when its buffer was full:
// events_lost), but a scan of the whole table when it is read again
// sends those the ring does not pick (persisted ones) without waiting for
// the periodic scan; everything else the Syncer does goes on.
func (s *Syncer) feed(ctx context.Context) {
	delay := s.opt.FeedRetry
	for restart := false; ; restart = true {
		s.setFeed(func(f *FeedStatus) { f.State, f.RetryAt = FeedRunning, time.Time{} })
		if restart {
			s.scanAll()
		}
		began := time.Now()
		err := s.opt.Events.ReadNewFlows(ctx, s.newFlow)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("ended without an error")
		}
		now := time.Now()
		if now.Sub(began) >= s.opt.FeedRetryMax {
			delay = s.opt.FeedRetry
		}
		s.setFeed(func(f *FeedStatus) {
			f.State, f.RetryAt = FeedRestarting, now.Add(delay)
			f.Failures++
			f.LastError, f.LastFailure = fmt.Sprintf("new flows: %v", err), now
		})
		s.opt.Log.Error("the kernel's new-flow feed failed; reading it again later", "error", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, s.opt.FeedRetryMax)
		s.opt.Log.Info("reading the kernel's new-flow feed again")
	}
}

// setFeed changes the feed's status under s.fmu.
func (s *Syncer) setFeed(fn func(*FeedStatus)) {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	fn(&s.feedSt)
}

// Feed reports the state of the kernel's new-flow feed.
func (s *Syncer) Feed() FeedStatus {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.feedSt
}
