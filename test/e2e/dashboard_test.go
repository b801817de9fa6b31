package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/fulcrum-lb/fulcrum/internal/browsertest"
)

// TestDashboardDrainInChromium loads the dashboard of the real binary in
// headless Chromium, enters the admin token, clicks "Drain" on a backend
// and checks the change in the API, on the page and in the traffic.
// FULCRUM_SCREENSHOT=docs/dashboard.png (relative to the repository)
// saves what the browser shows.
func TestDashboardDrainInChromium(t *testing.T) {
	t.Parallel()
	tab := browsertest.New(t, 2*time.Minute)
	const token = "dashboard-e2e-token-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bs := startBackends(t, 2)
	listen := freeAddr(t, "tcp")
	// A backup nobody listens on: the page shows it down, with the reason.
	dead := uniqueLoopback() + ":9"
	n := startNode(t, fmt.Sprintf(`node: { name: lb1 }
admin: { listen: ADMIN, token_file: %s }
services:
  - name: web
    listen: %s
    protocol: tcp
    scheduler: rr
    health: { type: tcp, interval: 1s, rise: 1, fall: 2 }
    backends:
      - { address: %s, weight: 1 }
      - { address: %s, weight: 2 }
      - { address: %s, backup: true }
`, tokenFile, listen, bs[0].addr, bs[1].addr, dead))

	// Some traffic, and one connection that stays open, for the counters.
	for range 6 {
		if _, err := ask(listen); err != nil {
			t.Fatal(err)
		}
	}
	open, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	open.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := askOn(open); err != nil {
		t.Fatal(err)
	}

	row := func(addr string) string { return fmt.Sprintf(`tr[data-service="web"][data-backend=%q]`, addr) }
	tab.Navigate("http://"+n.admin+"/", 1280, 720)
	// Both backends shown, checked and up.
	for _, be := range bs {
		tab.WaitFor(0, fmt.Sprintf(`document.querySelector('%s td.health .pill')?.textContent === "up" && document.querySelector('%s td.check').classList.contains("ok")`, row(be.addr), row(be.addr)))
	}
	// The "cannot read the status" banner is not shown while all is well.
	if banner := browsertest.Eval[string](tab, `getComputedStyle(document.getElementById("fetch-error")).display`); banner != "none" {
		t.Errorf("fetch error banner: display %q, want none", banner)
	}
	tab.WaitFor(0, `document.querySelector('`+row(dead)+` td.health .pill')?.textContent === "down" && document.querySelector('`+row(dead)+` td.check').textContent.includes("refused")`)
	if node := browsertest.Eval[string](tab, `document.getElementById("node").textContent`); node != "lb1" {
		t.Errorf("node on the page: got %q, want lb1", node)
	}

	tab.Type("#token", token)
	tab.Click("#token-save")
	tab.WaitFor(0, `document.getElementById("token-state").textContent === "token set for this tab"`)
	tab.Click(row(bs[0].addr) + ` button[data-action="drain"]`)

	// The API reports the new admin state...
	deadline := time.Now().Add(20 * time.Second)
	for state := ""; state != "drain"; {
		if time.Now().After(deadline) {
			t.Fatalf("admin state of %s in /api/v1/status: got %q, want drain\npage problems: %q", bs[0].addr, state, tab.Problems())
		}
		for _, be := range n.service("web").Backends {
			if be.Address == bs[0].addr {
				state = be.AdminState
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, be := range n.service("web").Backends {
		if be.Address == bs[1].addr && be.AdminState != "ready" {
			t.Errorf("the other backend: admin state %q, want ready", be.AdminState)
		}
	}
	// ...the page shows it, with the action's confirmation...
	tab.WaitFor(0, `document.querySelector('`+row(bs[0].addr)+` td.admin-state .pill').textContent === "drain"`)
	tab.WaitFor(0, `document.querySelector('`+row(bs[0].addr)+` button[data-action="drain"]').disabled`)
	tab.WaitFor(0, `[...document.querySelectorAll("#messages .banner.ok")].some(e => e.textContent.includes("admin state is now drain"))`)
	// ...and new connections go to the other backend only.
	for range 4 {
		if got, err := ask(listen); err != nil || got != bs[1].name {
			t.Errorf("new connection after drain: got %q, %v; want %s", got, err, bs[1].name)
		}
	}
	// The node's own history has those connections: the service's graph
	// and the other backend's show a rate above 0 within a sample or two.
	graph := `document.querySelector('section[data-service="web"] svg.chart.big')`
	spark := `document.querySelector('` + row(bs[1].addr) + ` svg.chart.small')`
	tab.WaitFor(20*time.Second, graph+`?.dataset.peak > 0 && `+spark+`?.dataset.peak > 0`)
	for _, pr := range tab.Problems() {
		t.Errorf("page problem: %s", pr)
	}

	if out := os.Getenv("FULCRUM_SCREENSHOT"); out != "" {
		if !filepath.IsAbs(out) {
			out = filepath.Join("..", "..", out) // relative to the repository
		}
		// Let a refresh bring the counters of the connections above in.
		browsertest.Eval[chromedp.Void](tab, `window.scrollTo(0, 0)`)
		time.Sleep(2500 * time.Millisecond)
		if err := os.WriteFile(out, tab.Screenshot(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot written to %s", out)
	}
}
