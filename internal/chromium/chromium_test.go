package chromium

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// launch starts Chromium for a test, or skips it when none is installed.
func launch(t *testing.T) *Browser {
	t.Helper()
	bin := Binary()
	if bin == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium); skipping the browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, err := Launch(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

const testPage = `<!doctype html><title>t</title>
<input id="in"><button id="go">go</button><button id="off" disabled>off</button><p id="out"></p>
<script src="/page.js"></script>`

const testScript = `document.getElementById("go").addEventListener("click", (ev) => {
  document.getElementById("out").textContent = "clicked:" + document.getElementById("in").value + ":" + ev.isTrusted;
});
console.error("hello from the page");`

func TestDrivesAPage(t *testing.T) {
	t.Parallel()
	b := launch(t)
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

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := b.Page(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetViewport(ctx, 800, 600); err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, srv.URL+"/"); err != nil {
		t.Fatal(err)
	}
	var title string
	if err := p.Eval(ctx, "document.title", &title); err != nil || title != "t" {
		t.Fatalf("title: got %q, %v; want t", title, err)
	}
	if err := p.Type(ctx, "#in", "abc"); err != nil {
		t.Fatal(err)
	}
	if err := p.Click(ctx, "#go"); err != nil {
		t.Fatal(err)
	}
	// The click is a real (trusted) mouse event, not element.click().
	if err := p.WaitFor(ctx, `document.getElementById("out").textContent === "clicked:abc:true"`); err != nil {
		t.Fatal(err)
	}
	if err := p.Click(ctx, "#off"); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("clicking a disabled button: got %v, want an error", err)
	}
	if err := p.Click(ctx, "#nope"); err == nil || !strings.Contains(err.Error(), "no element") {
		t.Errorf("clicking nothing: got %v, want an error", err)
	}
	if err := p.Eval(ctx, "nosuchvariable", nil); err == nil || !strings.Contains(err.Error(), "ReferenceError") {
		t.Errorf("bad expression: got %v, want a ReferenceError", err)
	}
	var sum int
	if err := p.Eval(ctx, "Promise.resolve(40 + 2)", &sum); err != nil || sum != 42 {
		t.Errorf("promise: got %d, %v; want 42", sum, err)
	}
	png, err := p.Screenshot(ctx)
	if err != nil || len(png) < 100 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	if !slices.ContainsFunc(p.Problems(), func(s string) bool { return strings.Contains(s, "console.error: hello from the page") }) {
		t.Errorf("problems: got %q, want the page's console.error", p.Problems())
	}
}

func TestLaunchFailsCleanly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Launch(ctx, "/bin/false"); err == nil || !strings.Contains(err.Error(), "exited at start") {
		t.Errorf("got %v, want an error saying the browser exited", err)
	}
}
