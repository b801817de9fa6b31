package accesslog

import (
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/syncbuf"
)

// failing fails every write while full is set, as a full disk does.
type failing struct {
	full atomic.Bool
	n    atomic.Int64
}

func (f *failing) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, errors.New("write /var/log/fulcrum/access.log: no space left on device")
	}
	f.n.Add(int64(len(p)))
	return len(p), nil
}

// TestWriteErrorsLoggedAndCounted: failed writes are counted with the
// lines they lose and the last error, and logged at WARN: the first at
// once, the next ones at most every ErrorLogInterval with their count;
// writes that succeed again are logged too.
func TestWriteErrorsLoggedAndCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		out := &failing{}
		out.full.Store(true)
		logs := &syncbuf.Buffer{}
		w := New(out, time.Second, slog.New(slog.NewTextHandler(logs, nil)))
		defer w.Close()
		e := entry()
		for range 3 {
			w.Log(Common, e)
			w.Log(Common, e)
			if err := w.Flush(); err == nil {
				t.Fatal("Flush: got nil, want the write's error")
			}
		}
		st := w.Stats()
		if st.Errors != 3 || st.Lost != 6 || !strings.Contains(st.LastError, "no space left") || st.LastErrorAt.IsZero() {
			t.Errorf("got %+v, want 3 errors, 6 lines lost and the last error", st)
		}
		got := logs.Lines()
		if len(got) != 1 || !strings.Contains(got[0], "level=WARN") || !strings.Contains(got[0], "failed_writes=1 lines_lost=2") {
			t.Fatalf("after three failures in a row got log lines %q, want one WARN for the first", got)
		}
		// The two others are logged once the interval has passed, by the
		// flusher, even with no write failing then.
		time.Sleep(ErrorLogInterval + 2*time.Second)
		synctest.Wait()
		got = logs.Lines()
		if len(got) != 2 || !strings.Contains(got[1], "failed_writes=2 lines_lost=4") || !strings.Contains(got[1], "failed_writes_total=3") {
			t.Fatalf("after the interval got log lines %q, want a second WARN counting 2 failures", got)
		}
		out.full.Store(false)
		w.Log(Common, e)
		if err := w.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
		got = logs.Lines()
		if len(got) != 3 || !strings.Contains(got[2], "succeed again") {
			t.Fatalf("got log lines %q, want a third saying writes succeed again", got)
		}
		if out.n.Load() == 0 {
			t.Error("nothing written once the disk had room")
		}
	})
}
