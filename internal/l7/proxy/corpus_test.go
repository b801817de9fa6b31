package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRequestCorpus replays the codec's corpus of valid and invalid
// requests (internal/l7/http1/testdata/requests, "<outcome>_<name>.http")
// through the proxy: a valid one gets the backend's answer and reaches it
// as a request net/http parses; an invalid one gets its status and
// reaches nothing.
func TestRequestCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../http1/testdata/requests/*.http")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	var parsed, broken atomic.Int64
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				if err != io.EOF {
					broken.Add(1)
				}
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				broken.Add(1)
				return
			}
			parsed.Add(1)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	forwarded := 0
	for _, f := range files {
		name := filepath.Base(f)
		outcome, _, _ := strings.Cut(name, "_")
		if name == "ok_post-content-length-max.http" {
			continue // a body of 2^63-1 bytes: nothing to wait for here
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want := 200
		switch {
		case outcome != "ok":
			want, _ = strconv.Atoi(outcome)
		case strings.HasPrefix(string(data), "CONNECT "):
			want = 405
		default:
			forwarded++
		}
		c := dial(t, addr)
		c.send(string(data))
		method, _, _ := strings.Cut(string(data), " ")
		var resp *http.Response
		for {
			resp, err = http.ReadResponse(c.br, &http.Request{Method: method})
			if err != nil || resp.StatusCode >= 200 {
				break
			}
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d", name, resp.StatusCode, want)
		}
		c.c.Close()
	}
	eventually(t, "the valid requests to reach the backend", func() bool { return parsed.Load() >= int64(forwarded) })
	if n := parsed.Load(); n != int64(forwarded) {
		t.Errorf("backend parsed %d requests, want %d", n, forwarded)
	}
	if n := broken.Load(); n != 0 {
		t.Errorf("backend could not parse %d forwarded requests", n)
	}
}

// TestResponseCorpus replays the codec's corpus of backend responses
// (internal/l7/http1/testdata/responses, "<outcome>_<METHOD>_<name>.http")
// through the proxy: a valid one reaches the client with the status
// net/http reads from it; an invalid one becomes a 502.
func TestResponseCorpus(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../http1/testdata/responses/*.http")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus: %v (%d files)", err, len(files))
	}
	answers := map[string][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		answers["/"+filepath.Base(f)] = data
	}
	be := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		c.Write(answers[req.URL.Path])
	})
	svc, _ := service(t, be.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	for _, f := range files {
		name := filepath.Base(f)
		parts := strings.SplitN(name, "_", 3)
		outcome, method := parts[0], parts[1]
		if method == "CONNECT" {
			continue // refused by the proxy before any backend
		}
		req := method + " /" + name + " HTTP/1.1\r\nHost: a\r\n"
		if strings.Contains(name, "switching-protocols") {
			req += "Connection: upgrade\r\nUpgrade: websocket\r\n"
		}
		if method == "POST" {
			req += "Content-Length: 1\r\n\r\nx"
		} else {
			req += "\r\n"
		}
		want := 502
		if outcome == "ok" {
			want = finalStatus(t, answers["/"+name], method)
		}
		c := dial(t, addr)
		c.send(req)
		var resp *http.Response
		var err error
		for {
			resp, err = http.ReadResponse(c.br, &http.Request{Method: method})
			if err != nil || resp.StatusCode >= 200 || resp.StatusCode == 101 {
				break
			}
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if resp.StatusCode != want {
			t.Errorf("%s: got %d, want %d", name, resp.StatusCode, want)
		}
		c.c.Close()
	}
}

// finalStatus is the status net/http reads from a response, past any
// interim one; 502 when the backend closes after an interim response
// without a final one.
func finalStatus(t *testing.T, data []byte, method string) int {
	br := bufio.NewReader(strings.NewReader(string(data)))
	for interim := false; ; interim = true {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil && interim {
			return 502
		}
		if err != nil {
			t.Fatalf("net/http cannot read a valid corpus response: %v", err)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == 101 {
			return resp.StatusCode
		}
	}
}
