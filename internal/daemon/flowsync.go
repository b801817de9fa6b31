package daemon

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director/flowsync"
)

// The flow sync (docs/director.md, "Flow sync"): while a kernel director
// exists and director.sync.listen is set, one flowsync.Syncer runs on its
// own goroutine with the director's program as its tables and new-flow
// feed (it is their only reader) and the director as its resolver. The
// director tells it of every ring it writes (RingChanged) through a hook
// set before any service is added. A reload that changes director.sync
// stops the running Syncer and starts a new one; one that keeps
// director.sync.listen hands the bound socket over, so that no datagram
// is lost meanwhile.

// syncRun is the running Syncer. Run goroutine only.
type syncRun struct {
	sy  *flowsync.Syncer
	dir KernelDirector
	// cfg and node are what it was opened with.
	cfg  config.Director
	node string
	// sock is the bound socket; the Syncer gets a view of it (syncView)
	// so that a successor can take it over.
	sock   net.PacketConn
	cancel context.CancelFunc
	done   chan struct{}
}

// syncView is a Syncer's handle on the shared socket: its Close ends the
// Syncer's reads without closing the socket.
type syncView struct{ net.PacketConn }

func (v syncView) Close() error { return v.SetReadDeadline(time.Now()) }

// syncStage opens the flow sync the plan's director and cfg ask for. Its
// prepare runs after the director's (a new director gets the ring hook
// before the listeners' stage adds its services): a socket that cannot
// be bound is an error of the apply, which leaves the running Syncer
// as it was. At commit the running Syncer is stopped and the new one
// started; with no director or no director.sync.listen none runs.
func (d *Daemon) syncStage(p *plan, cfg *config.Config) stage {
	var next *syncRun
	var bound net.PacketConn // bound by prepare, not taken over
	keep := false
	return stage{
		prepare: func() error {
			if p.director == nil {
				return nil
			}
			table, events, res := p.director.FlowSync(d.ringChanged)
			cur := d.flowSync
			want := cfg.Director
			if want.Sync.Listen == "" {
				return nil
			}
			if cur != nil && cur.dir == p.director && cur.node == cfg.Node.Name && sameSync(cur.cfg, want) {
				keep = true
				return nil
			}
			sock := net.PacketConn(nil)
			if cur != nil && cur.cfg.Sync.Listen == want.Sync.Listen {
				sock = cur.sock
			} else {
				c, err := flowsync.Listen(want.Sync.Listen)
				if err != nil {
					return fmt.Errorf("director.sync.listen: %w", err)
				}
				sock, bound = c, c
			}
			sy, err := flowsync.OpenConn(want, cfg.Node.Name, syncView{sock}, table, events, res, d.opt.Log)
			if err != nil {
				if bound != nil {
					bound.Close()
					bound = nil
				}
				return fmt.Errorf("director.sync: %w", err)
			}
			next = &syncRun{sy: sy, dir: p.director, cfg: want, node: cfg.Node.Name, sock: sock}
			return nil
		},
		rollback: func() {
			if bound != nil {
				bound.Close()
			}
		},
		commit: func() {
			if keep {
				return
			}
			d.stopSync(next == nil || next.sock != d.flowSyncSock())
			if next != nil {
				d.startSync(next)
			}
		},
	}
}

// flowSyncSock is the running Syncer's socket, nil if none runs.
func (d *Daemon) flowSyncSock() net.PacketConn {
	if d.flowSync == nil {
		return nil
	}
	return d.flowSync.sock
}

// sameSync reports whether a and b open the same Syncer.
func sameSync(a, b config.Director) bool {
	x, y := a.Sync, b.Sync
	return x.Listen == y.Listen && slices.Equal(x.Peers, y.Peers) && bytes.Equal(x.AuthKey, y.AuthKey) &&
		x.MaxRate == y.MaxRate && a.FlowTimeout == b.FlowTimeout
}

// startSync runs r's Syncer until stopSync.
func (d *Daemon) startSync(r *syncRun) {
	// A predecessor's Close left a deadline on the socket it hands over.
	if err := r.sock.SetReadDeadline(time.Time{}); err != nil {
		d.log.Error("flow sync socket", "error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go func() {
		defer close(r.done)
		// Run returns when stopSync cancels it; it reads the kernel's
		// new-flow feed again itself after a failure.
		if err := r.sy.Run(ctx); err != nil {
			d.log.Error("flow sync stopped", "error", err)
		}
	}()
	d.flowSync = r
	d.syncer.Store(r.sy)
	st := r.sy.Status()
	d.log.Info("flow sync running", "listen", st.Listen, "peers", len(st.Peers))
}

// stopSync stops the running Syncer, if any, and waits for it; closeSock
// also closes its socket (else a successor takes it over). Run goroutine
// only; the director's ring hook may still call the stopped Syncer,
// which it ignores.
func (d *Daemon) stopSync(closeSock bool) {
	r := d.flowSync
	if r == nil {
		return
	}
	d.syncer.Store(nil)
	r.cancel()
	<-r.done
	if closeSock {
		r.sock.Close()
		d.log.Info("flow sync stopped")
	}
	d.flowSync = nil
}

// ringChanged is the directors' ring hook: it tells the running Syncer.
// Any goroutine; it never blocks.
func (d *Daemon) ringChanged(id uint32) {
	if sy := d.syncer.Load(); sy != nil {
		sy.RingChanged(id)
	}
}

// syncStatus is the running Syncer's status for the API; nil if none.
func (d *Daemon) syncStatus() *admin.DirectorSync {
	sy := d.syncer.Load()
	if sy == nil {
		return nil
	}
	st := sy.Status()
	out := &admin.DirectorSync{
		Listen: st.Listen, Sent: st.Sent, Received: st.Received, Installed: st.Installed,
		DatagramsSent: st.DatagramsSent, DatagramsReceived: st.DatagramsReceived,
		Queued: st.Queued, Dumps: st.Dumps, Dropped: st.Dropped, Peers: []admin.DirectorSyncPeer{},
		Feed: st.Feed.State, FeedFailures: st.Feed.Failures, FeedError: st.Feed.LastError,
		FeedLastFailure: st.Feed.LastFailure, FeedRetryAt: st.Feed.RetryAt,
	}
	for _, p := range st.Peers {
		out.Peers = append(out.Peers, admin.DirectorSyncPeer{
			Address: p.Addr.String(), Node: p.Node, LastHeard: p.LastHeard, Joined: p.Joined,
			Datagrams: p.Datagrams, Entries: p.Entries,
		})
	}
	return out
}
