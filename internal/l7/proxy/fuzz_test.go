package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// FuzzFindCookie: the Cookie field is client bytes. Whatever it holds,
// the lookup must not panic, and a value it returns must come from the
// field and follow "name=".
func FuzzFindCookie(f *testing.F) {
	for _, s := range []string{
		"SRV=0123456789abcdef", "a=1; SRV=x; b=2", "SRV=\"quoted\"", "SRV", "SRV=", ";;;", "SRVX=1; SRV=2",
		"  SRV=1  ", "SRV=1;SRV=2", "\"", "=;=",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got := findCookie(v, "SRV")
		if got == nil {
			return
		}
		if !bytes.Contains(v, got) {
			t.Fatalf("findCookie(%q) = %q, not a part of the field", v, got)
		}
		if !bytes.Contains(v, []byte("SRV=")) {
			t.Fatalf("findCookie(%q) = %q without SRV=", v, got)
		}
	})
}

// FuzzMatch: routing reads the client's Host and path; any bytes must
// land on a route (or the default) without panicking, and a Host route
// must match only its host.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"api.example.com", "API.EXAMPLE.COM:80", "[::1]:8080", "x.example.org", ".example.org", "", ":", "[", "a:b:c"} {
		f.Add([]byte(s), []byte("/static/x"))
	}
	s := &snapshot{routes: []route{
		{host: "api.example.com"},
		{host: ".example.org", wildcard: true, prefix: "/app"},
		{prefix: "/static/"},
	}}
	f.Fuzz(func(t *testing.T, host, path []byte) {
		r := s.match(host, path)
		h := strings.ToLower(string(stripPort(host)))
		switch r {
		case &s.routes[0]:
			if h != "api.example.com" {
				t.Fatalf("host %q matched api.example.com", host)
			}
		case &s.routes[1]:
			if !strings.HasSuffix(h, ".example.org") || h == ".example.org" || !bytes.HasPrefix(path, []byte("/app")) {
				t.Fatalf("host %q path %q matched *.example.org/app", host, path)
			}
		case &s.routes[2]:
			if !bytes.HasPrefix(path, []byte("/static/")) {
				t.Fatalf("path %q matched /static/", path)
			}
		}
	})
}

// fuzzRig is one proxy and one backend for every input of FuzzProxy.
type fuzzRig struct {
	addr   string
	broken atomic.Int64 // forwarded requests net/http could not parse
	last   atomic.Pointer[string]
}

var (
	rigOnce sync.Once
	rig     *fuzzRig
)

func startRig(t *testing.T) *fuzzRig {
	rigOnce.Do(func() {
		r := &fuzzRig{}
		bln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := bln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					for {
						req, err := http.ReadRequest(br)
						if err != nil {
							if err != io.EOF && !errors.Is(err, net.ErrClosed) && !isReset(err) {
								msg := err.Error()
								r.last.Store(&msg)
								r.broken.Add(1)
							}
							return
						}
						if _, err := io.Copy(io.Discard, req.Body); err != nil {
							return // the proxy cut a body it found malformed
						}
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					}
				}()
			}
		}()
		be := bln.Addr().(*net.TCPAddr).AddrPort()
		svc, _ := service(t, be)
		p := New(&Config{Name: "fuzz", Default: svc, HeaderTimeout: 200 * time.Millisecond,
			BodyTimeout: 200 * time.Millisecond, ResponseTimeout: time.Second, Log: testLogger(t),
			Forward: Forwarding{XForwardedFor: true, XForwardedProto: true, XForwardedHost: true, Forwarded: true, XRealIP: true}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go p.Serve(context.Background(), ln)
		r.addr = ln.Addr().String()
		rig = r
	})
	return rig
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF)
}

// FuzzProxy sends arbitrary bytes through a live proxy: it must not
// panic, must answer or close, and everything it forwards must parse as
// HTTP/1.1 requests at the backend. Seeded with the codec's corpus.
func FuzzProxy(f *testing.F) {
	files, _ := filepath.Glob("../http1/testdata/requests/*.http")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := startRig(t)
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Fatalf("proxy neither answered nor closed: %v", err)
		}
		if n := r.broken.Load(); n > 0 {
			t.Fatalf("the backend could not parse %d forwarded requests (last: %s); input %q", n, *r.last.Load(), in)
		}
	})
}

// respRig serves, for request /N, the bytes registered under N, then
// closes: a backend answering whatever the fuzzer makes up.
type respRig struct {
	addr    string
	next    atomic.Int64
	answers sync.Map // "/N" -> []byte
}

var (
	respOnce sync.Once
	resp     *respRig
)

func startRespRig(t *testing.T) *respRig {
	respOnce.Do(func() {
		r := &respRig{}
		bln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := bln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					req, err := http.ReadRequest(bufio.NewReader(c))
					if err != nil {
						return
					}
					if a, ok := r.answers.LoadAndDelete(req.URL.Path); ok {
						c.Write(a.([]byte))
					}
				}()
			}
		}()
		svc, _ := service(t, bln.Addr().(*net.TCPAddr).AddrPort())
		// MaxIdlePerBackend 1 and a backend closing every connection: each
		// request gets its own, so answers cannot leak between inputs.
		p := New(&Config{Name: "fuzz", Default: svc, ResponseTimeout: 500 * time.Millisecond,
			BodyTimeout: 500 * time.Millisecond, MaxIdlePerBackend: 1, Log: testLogger(t)})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go p.Serve(context.Background(), ln)
		r.addr = ln.Addr().String()
		resp = r
	})
	return resp
}

// FuzzProxyResponse makes the backend answer arbitrary bytes: the client
// must always get a response head net/http parses, and a 502 whenever the
// codec refuses what the backend sent. Seeded with the codec's corpus of
// responses.
func FuzzProxyResponse(f *testing.F) {
	files, _ := filepath.Glob("../http1/testdata/responses/*_GET_*.http")
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := startRespRig(t)
		path := "/" + strconv.FormatInt(r.next.Add(1), 10)
		r.answers.Store(path, in)
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		br := bufio.NewReader(c)
		var got *http.Response
		for {
			got, err = http.ReadResponse(br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatalf("the client got no valid response head: %v; backend sent %q", err, in)
			}
			if got.StatusCode >= 200 || got.StatusCode == 101 {
				break
			}
		}
		io.Copy(io.Discard, got.Body)
		var parsed http1.Response
		if _, err := http1.ParseResponse(in, &parsed, http1.Limits{}, []byte("GET")); err != nil && got.StatusCode != 502 && !interimThenValid(in) {
			t.Fatalf("backend sent %q (%v), client got %d, want 502", in, err, got.StatusCode)
		}
	})
}

// interimThenValid reports whether in starts with an interim response the
// proxy relays or drops, after which a valid final one may follow.
func interimThenValid(in []byte) bool {
	var r http1.Response
	n, err := http1.ParseResponse(in, &r, http1.Limits{}, []byte("GET"))
	if err != nil || r.Status >= 200 || r.Status == 101 {
		return false
	}
	_, err = http1.ParseResponse(in[n:], &r, http1.Limits{}, []byte("GET"))
	return err == nil || interimThenValid(in[n:])
}
