package vrrp

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestInitDeadStatus: Status.ListenUntil says until when a starting node
// listens, and is cleared by the first advert.
func TestInitDeadStatus(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		n := &fakeNet{}
		cfg := testConfig("10.0.0.1", 100)
		cfg.InitDead = 3 * time.Second
		begin := time.Now()
		me := start(t, n, cfg, nil)
		synctest.Wait()
		want := begin.Add(3*time.Second + skewTime(iv, 100))
		if s := me.in.Status(); s.State != Backup || !s.ListenUntil.Equal(want) {
			t.Fatalf("at start: %v listening until +%v, want backup until +%v", s.State, s.ListenUntil.Sub(begin), want.Sub(begin))
		}
		time.Sleep(time.Second)
		n.conn(t, "10.0.0.2", nil).advertise(200, time.Second, 1)
		synctest.Wait()
		if s := me.in.Status(); !s.ListenUntil.IsZero() || s.State != Backup {
			t.Errorf("after an advert: %v listening until %v, want backup, no longer listening", s.State, s.ListenUntil)
		}
		me.stop(t)
	})
}

// TestInitDeadFault: a fault that clears next to a master advertising at
// a longer interval uses the interval it heard while in fault; one that
// clears before anything was heard listens for InitDead as a start does.
func TestInitDeadFault(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		peer       bool
		wantMaster bool // within 5s of the fault clearing
	}{
		{name: "master heard in fault", peer: true, wantMaster: false},
		{name: "nothing heard", peer: false, wantMaster: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				n := &fakeNet{}
				cfg := testConfig("10.0.0.1", 150)
				cfg.DownAdverts, cfg.InitDead = 2, 2*time.Second
				conn := n.conn(t, "10.0.0.1", nil)
				ann := &fakeAnnouncer{}
				in := New(cfg, conn, ann, nil)
				in.SetFault(true)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- in.Run(ctx) }()
				if tt.peer {
					peer := n.conn(t, "10.0.0.2", nil)
					go peer.advertise(100, time.Second, 10)
				}
				time.Sleep(3500 * time.Millisecond) // between two of the peer's adverts
				synctest.Wait()
				clearAt := time.Now()
				in.SetFault(false)
				synctest.Wait()
				if s := in.Status(); s.State != Backup || s.ListenUntil.IsZero() == !tt.peer {
					t.Errorf("fault cleared: %v listening until %v; want backup, listening %v", s.State, s.ListenUntil, !tt.peer)
				}
				time.Sleep(5 * time.Second)
				synctest.Wait()
				if got := in.State() == Master; got != tt.wantMaster {
					t.Errorf("5s after the fault cleared: %v, want master %v", in.State(), tt.wantMaster)
				}
				if tt.wantMaster {
					if d := in.Status().Since.Sub(clearAt); d != 2*time.Second+skewTime(iv, 150) {
						t.Errorf("master %v after the fault cleared, want %v", d, 2*time.Second+skewTime(iv, 150))
					}
				}
				time.Sleep(5 * time.Second) // the peer is done
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
		})
	}
}
