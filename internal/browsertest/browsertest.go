// Package browsertest gives a test a tab of a headless Chromium, driven with
// github.com/chromedp/chromedp: the dashboard's browser tests load the page,
// click its buttons and read what it shows through it. It only starts the
// browser as the tests need it and collects what the page complains about;
// the DevTools protocol and its transport are chromedp's.
//
// fulcrum had its own DevTools client and WebSocket (internal/chromium,
// about 750 lines) before; no part of it was kept, because nothing measured
// in its favour: on the same loaded 2-core machine, five alternating runs
// of each dashboard browser test took a median 7.7 s (ui) and 7.8 s (admin)
// with it and 8.0 s and 7.2 s with chromedp, within the runs' spread of
// 4.7-11.0 s; the time goes to Chromium's start and to the page's refresh
// interval, not to the protocol client.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Binary returns the path of an installed Chromium, or "" when there is
// none (Debian's package is "chromium").
func Binary() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Tab is one tab of a browser started for a test. Its methods fail the
// test (t.Fatal) when an action fails, so they must be called from the
// test's goroutine.
type Tab struct {
	t   testing.TB
	ctx context.Context

	mu       sync.Mutex
	problems []string
	output   lockedBuffer
}

// New starts Chromium headless with a throw-away profile and opens a tab,
// or skips t when no Chromium is installed. The browser is killed when t
// ends or after timeout, whichever comes first.
func New(t testing.TB, timeout time.Duration) *Tab {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium); skipping the browser test")
	}
	tab := &Tab{t: t}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // as root, and in containers
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.CombinedOutput(&tab.output),
	)
	// chromedp gives the browser a fresh user-data-dir of its own and
	// removes it, and kills the browser's processes, when the context ends.
	deadline, cancelDeadline := context.WithTimeout(context.Background(), timeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(deadline, opts...)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelDeadline()
	})
	tab.ctx = ctx
	// The first action starts the browser and binds it to ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium: %v\n%s", err, tab.output.String())
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if line := problem(m); line != "" {
				tab.mu.Lock()
				tab.problems = append(tab.problems, line)
				tab.mu.Unlock()
			}
		}
	}()
	return tab
}

// problem describes what the page complained about (exceptions, console
// errors and warnings, and browser log entries such as CSP violations and
// failed loads), or "" for an ordinary message. Each starts with its kind:
// "exception:", "console.error:", "log/<source>/<level>:".
func problem(m chromedp.ConsoleMessage) string {
	switch {
	case m.IsException():
		d := ""
		if m.Exception != nil && m.Exception.Exception != nil {
			d = m.Exception.Exception.Description
		}
		return fmt.Sprintf("exception: %s %s at %s:%d", m.Text, d, m.URL, m.Line+1)
	case m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleWarning && m.Type != "assert":
		return ""
	case m.Source != "":
		return fmt.Sprintf("log/%s/%s: %s %s", m.Source, m.Type, m.Text, m.URL)
	default:
		return "console." + string(m.Type) + ": " + m.Text
	}
}

// Context is the tab's chromedp context, for actions this package has no
// shortcut for.
func (p *Tab) Context() context.Context { return p.ctx }

// Problems returns what the page complained about so far (see problem).
func (p *Tab) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.problems...)
}

// fail ends the test with err, what the page complained about and, when
// the browser went away, what it printed.
func (p *Tab) fail(err error) {
	p.t.Helper()
	msg := fmt.Sprintf("%v\npage problems: %q", err, p.Problems())
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		msg += "\nchromium:\n" + p.output.String()
	}
	p.t.Fatal(msg)
}

// Do runs actions in order and fails the test at the first error.
func (p *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, actions...); err != nil {
		p.fail(err)
	}
}

// Navigate loads url, sized width × height CSS pixels, and waits for its
// load event.
func (p *Tab) Navigate(url string, width, height int64) {
	p.t.Helper()
	p.Do(chromedp.EmulateViewport(width, height), chromedp.Navigate(url))
}

// Click clicks the centre of the first element matching a CSS selector,
// with real mouse events, once it is visible. A disabled element fails the
// test: a browser would ignore the click, and the test would only time out
// later, waiting for its effect.
func (p *Tab) Click(selector string) {
	p.t.Helper()
	p.Do(chromedp.WaitVisible(chromedp.CSS(selector)))
	if Eval[bool](p, `!!document.querySelector(`+strconv.Quote(selector)+`)?.disabled`) {
		p.fail(fmt.Errorf("click: %s is disabled", selector))
	}
	p.Do(chromedp.Click(chromedp.CSS(selector)))
}

// Type types text into the first element matching a CSS selector.
func (p *Tab) Type(selector, text string) {
	p.t.Helper()
	p.Do(chromedp.SendKeys(chromedp.CSS(selector), text))
}

// WaitFor waits until the JavaScript expression expr is truthy, for at
// most within (0: until the browser's own deadline).
func (p *Tab) WaitFor(within time.Duration, expr string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		p.fail(fmt.Errorf("waiting for %s: %w", expr, err))
	}
}

// Screenshot returns a PNG of the viewport.
func (p *Tab) Screenshot() []byte {
	p.t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.fail(err)
	}
	return png
}

// Eval evaluates a JavaScript expression in the tab's page and decodes its
// value into a T.
func Eval[T any](p *Tab, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.fail(fmt.Errorf("evaluating %.80q: %w", expr, err))
	}
	return v
}

// lockedBuffer keeps the first MiB of what the browser prints, for failure
// messages; chromedp writes to it from its own goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.b.Len() < 1<<20 {
		w.b.Write(p)
	}
	return len(p), nil
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(w.b.String())
}
