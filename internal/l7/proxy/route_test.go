package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
)

func TestRoutingByHostAndPath(t *testing.T) {
	t.Parallel()
	api := startHTTP(t, hello("api"))
	static := startHTTP(t, hello("static"))
	wild := startHTTP(t, hello("wild"))
	def := startHTTP(t, hello("default"))
	apiSvc, _ := service(t, api.addr)
	staticSvc, _ := service(t, static.addr)
	wildSvc, _ := service(t, wild.addr)
	defSvc, _ := service(t, def.addr)
	_, addr := startProxy(t, &Config{
		Default: defSvc,
		Routes: []Route{
			{Host: "api.example.com", Pool: apiSvc},
			{PathPrefix: "/static/", Pool: staticSvc},
			{Host: "*.example.org", PathPrefix: "/app", Pool: wildSvc},
		},
	})
	c := dial(t, addr)
	for _, tc := range []struct{ req, want string }{
		{"GET /x HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "api"},
		{"GET /x HTTP/1.1\r\nHost: API.Example.COM:8080\r\n\r\n", "api"},
		{"GET /static/a.css HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "static"},
		{"GET /static HTTP/1.1\r\nHost: www.example.com\r\n\r\n", "default"},
		{"GET /app/1 HTTP/1.1\r\nHost: shop.example.org\r\n\r\n", "wild"},
		{"GET /app/1 HTTP/1.1\r\nHost: example.org\r\n\r\n", "default"},
		{"GET /other HTTP/1.1\r\nHost: shop.example.org\r\n\r\n", "default"},
		{"GET http://api.example.com/abs HTTP/1.1\r\nHost: api.example.com\r\n\r\n", "api"},
		{"GET /static/x?q=/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "static"},
	} {
		resp, body := c.roundTrip(tc.req)
		if resp.StatusCode != 200 || body != tc.want {
			t.Errorf("%q: got %d %q, want %q", strings.SplitN(tc.req, "\r\n", 3)[:2], resp.StatusCode, body, tc.want)
		}
	}
}

func TestCookiePersistence(t *testing.T) {
	t.Parallel()
	a := startHTTP(t, hello("a"))
	b := startHTTP(t, hello("b"))
	svc, bs := service(t, a.addr, b.addr)
	ck := &Cookie{Name: "SRV", Key: []byte("secret"), MaxAge: time.Hour, HTTPOnly: true}
	_, addr := startProxy(t, &Config{Default: svc, Cookie: ck})
	c := dial(t, addr)

	resp, first := c.roundTrip(get("/"))
	set := resp.Header.Get("Set-Cookie")
	name, rest, _ := strings.Cut(set, "=")
	id, attrs, _ := strings.Cut(rest, ";")
	if name != "SRV" || len(id) != cookieIDLen || !strings.Contains(attrs, "Max-Age=3600") || !strings.Contains(attrs, "HttpOnly") {
		t.Fatalf("Set-Cookie: got %q", set)
	}
	if resp.Header.Get("Cache-Control") != "private" {
		t.Errorf("a response inserting the cookie must not be cached by others: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	for _, be := range bs {
		for _, s := range []string{be.Addr.String(), be.Addr.Addr().String(), "127.0.0.1"} {
			if strings.Contains(id, s) {
				t.Errorf("cookie id %q reveals the address %s", id, s)
			}
		}
	}
	withCookie := "GET / HTTP/1.1\r\nHost: a\r\nCookie: theme=dark; SRV=" + id + "; x=y\r\n\r\n"
	// Round robin would alternate; the cookie pins every request, and a
	// request with the right cookie gets no new one.
	for i := range 4 {
		resp, body := c.roundTrip(withCookie)
		if body != first {
			t.Fatalf("request %d with the cookie went to %q, want %q", i, body, first)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("request %d: cookie set again: %q", i, resp.Header.Get("Set-Cookie"))
		}
	}
	// Another proxy with the same key (another node) honours the id.
	_, addr2 := startProxy(t, &Config{Default: svc, Cookie: ck})
	c2 := dial(t, addr2)
	for range 2 {
		if _, body := c2.roundTrip(withCookie); body != first {
			t.Fatalf("second node: got %q, want %q", body, first)
		}
	}
	// The pinned backend goes down: balanced normally, re-pinned.
	pinned := bs[0]
	if first == "b" {
		pinned = bs[1]
	}
	pinned.SetHealthy(false)
	resp, body := c.roundTrip(withCookie)
	if body == first || body == "" {
		t.Fatalf("pinned backend down: got %q", body)
	}
	set2 := resp.Header.Get("Set-Cookie")
	id2, _, _ := strings.Cut(strings.TrimPrefix(set2, "SRV="), ";")
	if len(id2) != cookieIDLen || id2 == id {
		t.Errorf("re-pin: got Set-Cookie %q, want a new id", set2)
	}
	// An unknown id is ignored and replaced.
	resp, _ = c.roundTrip("GET / HTTP/1.1\r\nHost: a\r\nCookie: SRV=0123456789abcdef\r\n\r\n")
	if !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "SRV="+id2) {
		t.Errorf("unknown id: got Set-Cookie %q, want SRV=%s", resp.Header.Get("Set-Cookie"), id2)
	}
}

func TestSourcePersistenceFromBalancer(t *testing.T) {
	t.Parallel()
	a := startHTTP(t, hello("a"))
	b := startHTTP(t, hello("b"))
	persist := balancer.NewPersistence(time.Minute, 32, 128, 1000)
	svc, _ := serviceWith(t, nil, persist, a.addr, b.addr)
	_, addr := startProxy(t, &Config{Default: svc})
	var first string
	for i := range 4 {
		c := dial(t, addr)
		_, body := c.roundTrip(get("/"))
		if i == 0 {
			first = body
		} else if body != first {
			t.Fatalf("request %d: got %q, want %q (same client address)", i, body, first)
		}
	}
}

func TestSlowlorisHeaderTimeout(t *testing.T) {
	t.Parallel()
	be := startHTTP(t, hello("x"))
	svc, _ := service(t, be.addr)
	p, addr := startProxy(t, &Config{Default: svc, HeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})

	// Trickling a head: 408 once the header timeout has passed, whatever
	// the pace.
	c := dial(t, addr)
	start := time.Now()
	c.send("GET / HTTP/1.1\r\n")
	var resp *http.Response
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.c.Write([]byte("X-A: b\r\n")); err != nil {
				return
			}
		}
	}()
	resp, _ = c.read("GET")
	if resp.StatusCode != 408 || !resp.Close {
		t.Errorf("got %d close=%v, want 408 and close", resp.StatusCode, resp.Close)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v to drop a slow head", d)
	}
	c.c.Close()
	<-done

	// A connection that never sends is closed silently.
	c2 := dial(t, addr)
	if !c2.closed() {
		t.Error("a silent connection was kept")
	}
	// An idle keep-alive connection is closed after IdleTimeout.
	c3 := dial(t, addr)
	if resp, _ := c3.roundTrip(get("/")); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	if !c3.closed() {
		t.Error("an idle keep-alive connection was kept")
	}
	if st := p.Stats(); st.BadRequests != 1 {
		t.Errorf("bad requests: got %d, want 1 (the 408)", st.BadRequests)
	}
}
