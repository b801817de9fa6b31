package l4

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestIdleWatch(t *testing.T) {
	t.Parallel()
	const idle = 4 * time.Second
	tests := []struct {
		name string
		// activeFor is how long the connection moves bytes (one every
		// idle/2) before falling silent.
		activeFor time.Duration
		stopAfter time.Duration // 0: never stopped
		broken    bool          // progress reports the sockets closed
		wantFire  bool
	}{
		{name: "silent from the start", wantFire: true},
		{name: "busy then silent", activeFor: 10 * idle, wantFire: true},
		{name: "stopped before the timeout", stopAfter: idle / 2},
		{name: "sockets closed", broken: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var moved atomic.Uint64
				progress := func() (uint64, bool) { return moved.Load(), !tt.broken }
				start := time.Now()
				fired := make(chan time.Duration, 1)
				w := startIdleWatch(idle, progress, func() { fired <- time.Since(start) })
				for time.Since(start) < tt.activeFor {
					time.Sleep(idle / 2)
					moved.Add(1)
				}
				lastByte := time.Since(start)
				if tt.stopAfter > 0 {
					time.Sleep(tt.stopAfter)
					w.stop()
				}
				time.Sleep(10 * idle)
				synctest.Wait()
				select {
				case at := <-fired:
					if !tt.wantFire {
						t.Fatalf("fired at %v, want never", at)
					}
					if since := at - lastByte; since < idle || since > idle+idle/4+idle/4 {
						t.Errorf("fired %v after the last byte, want within [%v, %v]", since, idle, idle*3/2)
					}
				default:
					if tt.wantFire {
						t.Fatal("never fired, want a fire after the idle timeout")
					}
				}
				w.stop()
			})
		})
	}
}

// A check that runs long after it was due (the process did not run: a
// busy host, a stopped VM) does not count the stall as idle time: the
// client's bytes may be waiting in a socket that nothing read meanwhile.
func TestIdleWatchStall(t *testing.T) {
	t.Parallel()
	const idle = 4 * time.Second
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		var stallEnded atomic.Int64
		start := time.Now()
		progress := func() (uint64, bool) {
			if calls.Add(1) == 3 {
				// The stall: this check runs 2 idle timeouts late.
				time.Sleep(2 * idle)
				stallEnded.Store(int64(time.Since(start)))
			}
			return 0, true
		}
		fired := make(chan time.Duration, 1)
		w := startIdleWatch(idle, progress, func() { fired <- time.Since(start) })
		defer w.stop()
		time.Sleep(10 * idle)
		synctest.Wait()
		select {
		case at := <-fired:
			// Before the stall the connection was silent for 2 checks
			// (idle/2); it closes after the rest of its idle time counted
			// from the stall's end, not at the stall's end.
			ended := time.Duration(stallEnded.Load())
			if at <= ended || at-ended < idle/4 {
				t.Errorf("fired %v after start, the stall ended at %v: the stall was counted as idle", at, ended)
			}
			if at-ended > idle+idle/2 {
				t.Errorf("fired %v after the stall ended, want within %v", at-ended, idle+idle/2)
			}
		default:
			t.Fatal("never fired")
		}
	})
}
