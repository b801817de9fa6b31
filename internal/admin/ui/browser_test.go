package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fulcrum-lb/fulcrum/internal/browsertest"
)

// TestRendersStatusShapes loads the page in Chromium against a status
// file with what the HTTP engine and the metrics work add (service
// request counters, route pools, per-backend requests in both shapes,
// configured weight), and checks what it shows and where an action on a
// route's backend goes. The admin package's browser test covers the
// actions against the real API server.
func TestRendersStatusShapes(t *testing.T) {
	t.Parallel()
	tab := browsertest.New(t, 90*time.Second)
	status, err := os.ReadFile("testdata/status-http.json")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var actions []string
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", Handler())
	mux.Handle("GET /ui/", Handler())
	// Each poll sees one more second on the status's clock and ten more
	// connections to 10.0.0.1:8080: the page must show 10 conn/s.
	var polls atomic.Int64
	base := time.Date(2026, 1, 2, 5, 0, 0, 0, time.UTC)
	mux.HandleFunc("GET /api/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		n := polls.Add(1)
		body := strings.Replace(string(status), `"total": 10, "connect_failures": 0, "bytes_in": 2048`,
			fmt.Sprintf(`"total": %d, "connect_failures": 0, "bytes_in": 2048`, 10*n), 1)
		body = strings.Replace(body, `"reloads":`, fmt.Sprintf(`"time": %q, "reloads":`, base.Add(time.Duration(n)*time.Second).Format(time.RFC3339)), 1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	})
	history, err := os.ReadFile("testdata/history.json")
	if err != nil {
		t.Fatal(err)
	}
	mux.HandleFunc("GET /api/v1/history", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(history)
	})
	mux.HandleFunc("POST /api/v1/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		actions = append(actions, r.URL.EscapedPath())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"admin_state":"drain"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tab.Navigate(srv.URL+"/", 1400, 900)
	tab.WaitFor(0, `document.querySelector('tr[data-service="web/api"]') !== null`)

	text := browsertest.Eval[string](tab, `document.body.innerText`)
	for _, want := range []string{
		"lb2", "feedfacecafe", "2 ok, 1 failed", `unknown scheduler "rrr"`,
		"requests 1,500", "bad requests 4", "2xx 1,480", "5xx 3", "reuses 1,488",
		"route web/api", "host api.example, path /v1/*", "default pool",
		"12.5 ms", "3.3 ms", "1,000", "500",
		"weight set at runtime", "slow start",
		"2/2 available", "1/1 available",
		"eth0 native · 42 flows", "1/2 peers heard · 1,200 sent · 790 installed · new-flow feed down",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q; it shows:\n%s", want, text)
		}
	}
	cellText := func(sel string) string {
		t.Helper()
		return browsertest.Eval[string](tab, `document.querySelector(`+"`"+sel+"`"+`)?.innerText ?? "missing"`)
	}
	// Flat counters (requests, errors) in a TCP service's table, columns
	// in header order.
	headers := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('table[data-pool="db"] th')].map(e => e.textContent)`)
	ri, ei := slices.Index(headers, "Requests"), slices.Index(headers, "Errors")
	if ri < 0 || ei != ri+2 || headers[ri+1] != "Req/s" || slices.Contains(headers, "Mean") {
		t.Fatalf("db headers: got %q, want Requests, Req/s, Errors and no Mean", headers)
	}
	row := `tr[data-service="db"][data-backend="10.0.0.3:5432"]`
	cells := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('`+row+` td')].map(e => e.innerText)`)
	if len(cells) != len(headers) || cells[ri] != "77" || cells[ei] != "5" {
		t.Errorf("db backend cells: got %q under %q, want 77 requests and 5 errors", cells, headers)
	}
	if wi := slices.Index(headers, "Weight"); wi < 0 || cells[wi] != "2" {
		t.Errorf("effective weight: got %q under %q, want 2", cells, headers)
	}
	// A director backend the director leaves out of its ring says why.
	if got := cellText(`tr[data-service="shop"][data-backend="10.0.1.2:80"] td.health`); !strings.Contains(got, "not forwarded") || !strings.Contains(got, "no neighbour entry for 10.0.1.2 on eth0") {
		t.Errorf("health cell of a backend not forwarded: got %q, want \"not forwarded\" and the reason", got)
	}
	if got := cellText(`tr[data-service="shop"][data-backend="10.0.1.1:80"] td.health`); strings.Contains(got, "not forwarded") {
		t.Errorf("health cell of a forwarded backend: got %q, want no \"not forwarded\"", got)
	}
	if got := cellText(`tr[data-backend="127.0.0.1:5433"] td.name`); got != "127.0.0.1:5433 fallback" {
		t.Errorf("fallback name cell: got %q, want the address and its role", got)
	}
	// Rates: the refresh selector set to 1 s brings a second sample.
	browsertest.Eval[chromedp.Void](tab, `(() => { const s = document.getElementById("refresh"); s.value = "1000"; s.dispatchEvent(new Event("change")); })()`)
	tab.WaitFor(0, `document.querySelector('tr[data-service="web"][data-backend="10.0.0.1:8080"] td.rate')?.textContent === "10"`)

	// The graphs: a point per known rate, broken where a rate is unknown
	// (null), the errors in a line of their own, the numbers beside.
	type graph struct {
		Points, Lines, ErrorLines int
		Last                      string
	}
	graphOf := func(sel string) graph {
		t.Helper()
		return browsertest.Eval[graph](tab, `(() => { const g = document.querySelector(`+"`"+sel+"`"+`); if (!g) return {points: -1};
			return {points: Number(g.dataset.points), last: g.dataset.last,
				lines: g.querySelectorAll("polyline.rate").length,
				errorLines: g.querySelectorAll("polyline.errors").length}; })()`)
	}
	for _, tc := range []struct {
		sel  string
		want graph
	}{
		{`section[data-service="db"] svg.chart.big`, graph{Points: 3, Lines: 1, ErrorLines: 1, Last: "3"}},
		{`tr[data-backend="10.0.0.3:5432"] svg.chart.small`, graph{Points: 2, Lines: 2, ErrorLines: 2, Last: "3"}},
		{`tr[data-service="web/api"][data-backend="10.0.0.2:8080"] svg.chart.small`, graph{Points: 2, Lines: 1, ErrorLines: 1, Last: "7"}},
	} {
		if got := graphOf(tc.sel); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.sel, got, tc.want)
		}
	}
	vertices := browsertest.Eval[int](tab, `document.querySelector('section[data-service="db"] svg.chart.big polyline.rate').getAttribute("points").trim().split(/\s+/).length`)
	if vertices != 3 {
		t.Errorf("db's rate line: got %d vertices, want 3", vertices)
	}
	if got := cellText(`section[data-service="db"] .graph-head`); !strings.Contains(got, "conn/s now 3.0, peak 3.0") || !strings.Contains(got, "errors/s now 0.5, peak 0.5") || !strings.Contains(got, "last 6 s") {
		t.Errorf("db's graph head: got %q, want the rate and errors now and at peak over the 6 s the history has", got)
	}
	if got := cellText(`tr[data-backend="127.0.0.1:5433"] td.spark`); got != "—" {
		t.Errorf("a backend without history: got %q, want —", got)
	}

	// The fallback has no buttons; the HA table is hidden with no groups.
	if got := cellText(`tr[data-backend="127.0.0.1:5433"] td.actions`); got != "" {
		t.Errorf("fallback actions: got %q, want none", got)
	}
	if !browsertest.Eval[bool](tab, `getComputedStyle(document.getElementById("ha-section")).display === "none"`) {
		t.Error("the HA section shows with no groups")
	}

	// An action on a route's backend addresses the pool SERVICE/ROUTE,
	// escaped into one path segment.
	tab.Click(`tr[data-service="web/api"] button[data-action="drain"]`)
	tab.WaitFor(0, `document.querySelector("#messages .banner.ok")?.textContent.includes("drain 10.0.0.2:8080 in web/api")`)
	mu.Lock()
	got := slices.Clone(actions)
	mu.Unlock()
	if want := []string{"/api/v1/services/web%2Fapi/backends/10.0.0.2%3A8080/drain"}; !slices.Equal(got, want) {
		t.Errorf("actions: got %q, want %q", got, want)
	}
	for _, pr := range tab.Problems() {
		t.Errorf("page problem: %s", pr)
	}
}
