package accesslog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/l7/proxy"
)

func entry() *proxy.Entry {
	return &proxy.Entry{
		Start:    time.Date(2026, 11, 21, 6, 51, 55, 123e6, time.FixedZone("", 3600)),
		Client:   netip.MustParseAddrPort("192.0.2.7:51234"),
		Service:  "web",
		Backend:  "10.0.0.11:80",
		Method:   []byte("GET"),
		Host:     []byte("www.example.com"),
		Path:     []byte("/index.html?q=1"),
		Proto:    "HTTP/1.1",
		Status:   200,
		BytesIn:  17,
		BytesOut: 5120,
		Wait:     412345 * time.Nanosecond,
		Total:    1500 * time.Microsecond,
	}
}

func TestCommon(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		edit func(e *proxy.Entry)
		want string
	}{
		{
			name: "relayed",
			want: `192.0.2.7 - - [21/Nov/2026:06:51:55 +0100] "GET /index.html?q=1 HTTP/1.1" 200 5120 "www.example.com" "web" "10.0.0.11:80" 17 0.412 1.500` + "\n",
		},
		{
			name: "answered by the proxy",
			edit: func(e *proxy.Entry) {
				e.Backend, e.Status, e.BytesOut, e.BytesIn, e.Wait, e.Total = "", 503, 0, 0, 0, 2*time.Second
				e.Client = netip.MustParseAddrPort("[::ffff:192.0.2.8]:1")
			},
			want: `192.0.2.8 - - [21/Nov/2026:06:51:55 +0100] "GET /index.html?q=1 HTTP/1.1" 503 - "www.example.com" "web" "-" 0 0.000 2000.000` + "\n",
		},
		{
			name: "hostile bytes are escaped",
			edit: func(e *proxy.Entry) {
				e.Path = []byte("/a\"b\\c\nd\xff")
				e.Host = nil
				e.Client = netip.MustParseAddrPort("[2001:db8::1]:443")
			},
			want: `2001:db8::1 - - [21/Nov/2026:06:51:55 +0100] "GET /a\x22b\x5cc\x0ad\xff HTTP/1.1" 200 5120 "" "web" "10.0.0.11:80" 17 0.412 1.500` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := entry()
			if tt.edit != nil {
				tt.edit(e)
			}
			if got := string(Common.Append(nil, e)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	e := entry()
	e.Path = []byte("/\"quoted\"\\\n\t\x01é\xff\u2028")
	line := JSON.Append(nil, e)
	if !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var got map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	want := map[string]any{
		"time": "2026-11-21T06:51:55.123+01:00", "client": "192.0.2.7", "client_port": 51234.0,
		"service": "web", "backend": "10.0.0.11:80", "method": "GET", "host": "www.example.com",
		"path": "/\"quoted\"\\\n\t\x01é\ufffd\u2028", "proto": "HTTP/1.1", "status": 200.0,
		"bytes_in": 17.0, "bytes_out": 5120.0, "wait_ms": 0.412, "total_ms": 1.5,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %#v, want %#v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d fields, want %d: %v", len(got), len(want), got)
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]Format{"common": Common, "json": JSON} {
		if got, err := ParseFormat(s); err != nil || got != want || got.String() != s {
			t.Errorf("ParseFormat(%q): got %v, %v", s, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Errorf("ParseFormat(xml): got no error")
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestWriterFlushesPeriodically(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := Open(path, 20*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Log(Common, entry())
	if n := len(readLines(t, path)); n != 0 {
		t.Errorf("before a flush: got %d lines in the file, want them buffered", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(readLines(t, path)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("line not flushed by the ticker within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWriterReopenAndClose(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	w, err := Open(path, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Log(Common, entry())
	// logrotate: rename, then ask for a reopen.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Log(JSON, entry())
	w.Log(JSON, entry())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Log(JSON, entry()) // dropped
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := readLines(t, path+".1"); len(got) != 1 || !strings.HasPrefix(got[0], "192.0.2.7 - - [") {
		t.Errorf("rotated file: got %q, want the one line before the reopen", got)
	}
	if got := readLines(t, path); len(got) != 2 || !strings.HasPrefix(got[0], `{"time"`) {
		t.Errorf("new file: got %q, want the two JSON lines", got)
	}
	if st := w.Stats(); st.Lines != 3 || st.Dropped != 1 || st.Errors != 0 {
		t.Errorf("stats: got %+v, want 3 lines, 1 dropped, 0 errors", st)
	}
}

func TestWriterOpenError(t *testing.T) {
	t.Parallel()
	_, err := Open(filepath.Join(t.TempDir(), "missing", "access.log"), 0, nil)
	if err == nil || !strings.Contains(err.Error(), "missing/access.log") {
		t.Errorf("got %v, want an error naming the path", err)
	}
}

// TestWriterConcurrent checks that lines from many goroutines, across
// many buffer flushes, arrive whole.
func TestWriterConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "access.log")
	w, err := Open(path, 5*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 2000
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := entry()
			e.Service = "svc" + string(rune('a'+g))
			for range each {
				w.Log(Format(g%2), e)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]bool{}
	for g := range workers {
		e := entry()
		e.Service = "svc" + string(rune('a'+g))
		want[string(Format(g%2).Append(nil, e))] = true
	}
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !want[sc.Text()+"\n"] {
			t.Fatalf("line %d mangled: %q", n, sc.Text())
		}
		n++
	}
	if n != workers*each {
		t.Errorf("got %d lines, want %d", n, workers*each)
	}
}

func TestLogDoesNotAllocate(t *testing.T) {
	w := New(discard{}, time.Hour, nil)
	defer w.Close()
	e := entry()
	for _, f := range []Format{Common, JSON} {
		if n := testing.AllocsPerRun(1000, func() { w.Log(f, e) }); n != 0 {
			t.Errorf("%v: got %v allocations per line, want 0", f, n)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func BenchmarkLog(b *testing.B) {
	for _, f := range []Format{Common, JSON} {
		b.Run(f.String(), func(b *testing.B) {
			w := New(discard{}, time.Hour, nil)
			defer w.Close()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				e := entry()
				for pb.Next() {
					w.Log(f, e)
				}
			})
		})
	}
}

// writes records the size of every write.
type writes struct {
	mu    sync.Mutex
	sizes []int
	data  bytes.Buffer
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sizes = append(w.sizes, len(p))
	return w.data.Write(p)
}

func TestWriterBoundsWritesAtLineEnds(t *testing.T) {
	t.Parallel()
	out := &writes{}
	w := New(out, time.Hour, nil)
	w.maxWrite = pipeBuf // as for stderr
	e := entry()
	long := entry()
	long.Path = bytes.Repeat([]byte("x"), 5000)
	for i := range 100 {
		if i == 50 {
			w.Log(Common, long)
		}
		w.Log(Common, e)
	}
	w.Close()
	for i, n := range out.sizes {
		if n > pipeBuf && n < 5000 {
			t.Errorf("write %d: %d bytes, want at most %d unless one long line", i, n, pipeBuf)
		}
	}
	data := out.data.String()
	if got := strings.Count(data, "\n"); got != 101 {
		t.Errorf("got %d lines, want 101", got)
	}
	off := 0
	for _, n := range out.sizes {
		if data[off+n-1] != '\n' {
			t.Errorf("a write ends mid-line at byte %d", off+n)
		}
		off += n
	}
}
