package proxy

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// pattern is an endless deterministic byte stream.
type pattern struct{ i byte }

func (p *pattern) Read(b []byte) (int, error) {
	for k := range b {
		b[k] = p.i
		p.i = p.i*7 + 3
	}
	return len(b), nil
}

// TestLargeBodiesStreamed sends a large upload and a large chunked
// download through the proxy and checks they arrive intact while the
// proxy's heap does not grow with them: bodies are streamed, never held.
//
// Not parallel: it measures the whole process's allocations, and serial
// tests run before the parallel ones start.
func TestLargeBodiesStreamed(t *testing.T) {
	size := int64(64 << 20)
	if testing.Short() || raceEnabled {
		size = 16 << 20
	}
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			h := sha256.New()
			n, _ := io.Copy(h, req.Body)
			if req.URL.Path == "/down" {
				// A chunked body: ReadResponse's writer chunks it.
				bw := bufio.NewWriter(c)
				fmt.Fprintf(bw, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				cw := newChunkWriter(bw)
				io.CopyN(cw, &pattern{}, size)
				cw.Close()
				bw.Flush()
				continue
			}
			sum := fmt.Sprintf("%d %x", n, h.Sum(nil))
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(sum), sum)
		}
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	c := dial(t, addr)
	c.c.SetDeadline(timeNowPlus(4 * waitFor))
	go func() {
		fmt.Fprintf(c.c, "PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n", size)
		io.CopyN(c.c, &pattern{}, size)
	}()
	want := sha256.New()
	io.CopyN(want, &pattern{}, size)
	wantSum := fmt.Sprintf("%d %x", size, want.Sum(nil))
	resp, body := c.read("PUT")
	if resp.StatusCode != 200 || body != wantSum {
		t.Fatalf("upload: got %d %q, want %q", resp.StatusCode, body, wantSum)
	}

	c.send(get("/down"))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	if err != nil || n != size || fmt.Sprintf("%x", got.Sum(nil)) != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatalf("download: got %d bytes, %v; want %d intact", n, err, size)
	}

	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	// The test's own hashing and bufio allocate a little; a body held in
	// memory would be at least size bytes (the race detector adds some).
	if grew := after.TotalAlloc - before.TotalAlloc; grew > uint64(size/2) {
		t.Errorf("allocated %d bytes while moving 2×%d: bodies are being buffered", grew, size)
	}
}

// TestStreamedAsWritten: a backend that writes a piece of its body and
// waits for the client to see it before writing the next (server-sent
// events, progress output) must not stall behind the proxy's buffers.
func TestStreamedAsWritten(t *testing.T) {
	t.Parallel()
	for _, framing := range []string{"chunked", "length", "close"} {
		t.Run(framing, func(t *testing.T) {
			t.Parallel()
			seen := make(chan struct{})
			be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				pieces := []string{"one\n", "two\n", "three\n"}
				switch framing {
				case "chunked":
					io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
				case "length":
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n")
				case "close":
					io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n")
				}
				for _, p := range pieces {
					if framing == "chunked" {
						fmt.Fprintf(c, "%x\r\n%s\r\n", len(p), p)
					} else {
						io.WriteString(c, p)
					}
					select {
					case <-seen:
					case <-time.After(waitFor):
						return
					}
				}
				if framing == "chunked" {
					io.WriteString(c, "0\r\n\r\n")
				}
			})
			svc, _ := service(t, be.addr)
			_, addr := startProxy(t, &Config{Default: svc})
			c := dial(t, addr)
			c.send(get("/events"))
			resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewReader(resp.Body)
			for _, want := range []string{"one\n", "two\n", "three\n"} {
				got, err := lines.ReadString('\n')
				if got != want {
					t.Fatalf("got %q %v, want %q", got, err, want)
				}
				seen <- struct{}{}
			}
		})
	}
}

// TestIdleConnectionsHoldNoBuffers: keep-alive connections waiting for
// their next request give their buffers and parse state back. Not parallel: it
// measures the whole heap.
func TestIdleConnectionsHoldNoBuffers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the buffer-less wait needs a non-blocking peek")
	}
	be := fastBackend(t)
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc})
	heap := func() uint64 {
		runtime.GC()
		runtime.GC() // a second cycle empties the pools' victim caches
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const n = 200
	for range n {
		newBenchClient(t, addr) // one request, then idle
	}
	eventually(t, "the connections to be open", func() bool { return p.Active() == n })
	time.Sleep(50 * time.Millisecond) // let the last ones reach their wait
	perConn := (int64(heap()) - int64(before)) / n
	// The connection's socket and bookkeeping stay, about 3.5 KiB; with
	// its 32 KiB reader, 8 KiB writer and 10 KiB of parse state it was
	// 55 KiB. The margin absorbs other tests' leftovers, and the race
	// detector's own per-goroutine state.
	limit := int64(16 << 10)
	if raceEnabled {
		limit = 32 << 10
	}
	if perConn > limit {
		t.Errorf("an idle connection holds %d bytes of heap, want its buffers released", perConn)
	}
	t.Logf("heap per idle keep-alive connection: %d bytes", perConn)
}
