package browsertest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const testPage = `<!doctype html><title>t</title>
<input id="in"><button id="go">go</button><button id="off" disabled>off</button><p id="out"></p>
<script src="/page.js"></script>`

const testScript = `document.getElementById("go").addEventListener("click", (ev) => {
  document.getElementById("out").textContent = "clicked:" + document.getElementById("in").value + ":" + ev.isTrusted;
});
console.error("hello from the page");
setTimeout(() => { throw new Error("thrown later"); }, 0);`

// fakeT records a Fatal instead of ending the test, to see the helpers
// fail.
type fakeT struct {
	testing.TB
	failed chan string
}

func (f *fakeT) Helper() {}

// Fatal ends the calling goroutine, as testing.T's does.
func (f *fakeT) Fatal(args ...any) {
	f.failed <- fmt.Sprint(args...)
	runtime.Goexit()
}

func TestDrivesAPage(t *testing.T) {
	t.Parallel()
	tab := New(t, 60*time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/page.js" {
			w.Header().Set("Content-Type", "text/javascript")
			w.Write([]byte(testScript))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(testPage))
	}))
	defer srv.Close()

	tab.Navigate(srv.URL+"/", 800, 600)
	if got := Eval[string](tab, "document.title"); got != "t" {
		t.Fatalf("title: got %q, want t", got)
	}
	if got := Eval[[]int](tab, "[innerWidth, innerHeight]"); !slices.Equal(got, []int{800, 600}) {
		t.Errorf("viewport: got %v, want [800 600]", got)
	}
	tab.Type("#in", "abc")
	tab.Click("#go")
	// The click is a real (trusted) mouse event, not element.click().
	tab.WaitFor(10*time.Second, `document.getElementById("out").textContent === "clicked:abc:true"`)
	if png := tab.Screenshot(); !strings.HasPrefix(string(png), "\x89PNG\r\n\x1a\n") {
		t.Errorf("screenshot: got %d bytes that are no PNG", len(png))
	}
	// The console's messages arrive on their own goroutine.
	deadline := time.Now().Add(10 * time.Second)
	for len(tab.Problems()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := tab.Problems()
	if !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "console.error: hello from the page") }) ||
		!slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "exception: ") && strings.Contains(s, "thrown later") }) {
		t.Errorf("problems: got %q, want the page's console.error and its exception", got)
	}

	// The helpers fail the test, saying why.
	for _, tc := range []struct {
		name string
		do   func(*Tab)
		want string
	}{
		{"disabled", func(p *Tab) { p.Click("#off") }, "#off is disabled"},
		{"exception", func(p *Tab) { Eval[int](p, "nosuchvariable") }, "ReferenceError"},
		{"timeout", func(p *Tab) { p.WaitFor(200*time.Millisecond, "false") }, "waiting for false"},
	} {
		f := &fakeT{TB: t, failed: make(chan string, 1)}
		p := &Tab{t: f, ctx: tab.ctx}
		go tc.do(p)
		select {
		case msg := <-f.failed:
			if !strings.Contains(msg, tc.want) {
				t.Errorf("%s: got %q, want it to say %q", tc.name, msg, tc.want)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("%s: the helper did not fail", tc.name)
		}
	}
}

// skipT turns a Skip into a panic the test recovers, instead of skipping
// the test.
type skipT struct{ testing.TB }

type skipped string

func (skipT) Helper()               {}
func (skipT) Skip(args ...any)      { panic(skipped(fmt.Sprint(args...))) }
func (skipT) Fatalf(string, ...any) { panic("Fatalf, want Skip") }

// Without Chromium on the PATH a browser test skips, saying what to
// install.
func TestSkipsWithoutChromium(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	msg := func() (msg any) {
		defer func() { msg = recover() }()
		New(skipT{t}, time.Minute)
		return nil
	}()
	if m, ok := msg.(skipped); !ok || !strings.Contains(string(m), "apt-get install chromium") {
		t.Errorf("without chromium: got %v, want a skip saying how to install chromium", msg)
	}
}
