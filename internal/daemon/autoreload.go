package daemon

import (
	"context"
	"crypto/sha256"
	"os"
	"syscall"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// fileStamp identifies one version of the config file. The inode catches
// editors that write a new file and rename it over the old one; the
// content hash catches a rewrite within the mtime's resolution.
type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
	sum   [sha256.Size]byte
}

// statFile reads path's metadata; sum is left zero.
func statFile(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

// stampFile reads path's metadata and content hash.
func stampFile(path string) (fileStamp, error) {
	st, err := statFile(path)
	if err != nil {
		return st, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	st.sum = sha256.Sum256(b)
	return st, nil
}

// load reads the config and records which version of the file it read,
// so that autoreload does not reload what was just loaded. The stamp is
// taken before reading: a change in between triggers one more reload,
// never a missed one.
func (d *Daemon) load() (*config.Config, error) {
	path := ""
	if snap := d.snap.Load(); snap != nil {
		path = snap.cfg.File
	}
	if path != "" {
		if st, err := stampFile(path); err == nil {
			d.seen.Store(&st)
		}
	}
	cfg, err := d.opt.Load()
	if path == "" && cfg != nil && cfg.File != "" {
		if st, err := stampFile(cfg.File); err == nil {
			d.seen.Store(&st)
		}
	}
	return cfg, err
}

// autoreload polls the config file once a second while the running
// config says autoreload: true, and reloads it when it changed, like
// ldirectord's autoreload=yes. The reload is SIGHUP's: an invalid file
// is logged with all its errors and the running config is kept; it is
// tried again only once the file changes again.
func (d *Daemon) autoreload(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		snap := d.snap.Load()
		if snap == nil || !snap.cfg.Autoreload || snap.cfg.File == "" {
			continue
		}
		path := snap.cfg.File
		seen := d.seen.Load()
		st, err := statFile(path)
		if err != nil {
			// An editor between unlink and rename, say: look again next
			// second.
			d.log.Debug("autoreload: config file unreadable", "file", path, "error", err)
			continue
		}
		if seen != nil && st.size == seen.size && st.mtime.Equal(seen.mtime) && st.ino == seen.ino {
			continue
		}
		if st, err = stampFile(path); err != nil {
			continue
		}
		if seen != nil && st.sum == seen.sum {
			d.seen.Store(&st) // touched, not changed
			continue
		}
		d.log.Info("config file changed, reloading", "file", path)
		// reload logs the outcome and records it for `fulcrum status`.
		_ = d.Reload(ctx)
	}
}
