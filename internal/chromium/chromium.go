// Package chromium drives a headless Chromium over the Chrome DevTools
// Protocol, with nothing but the standard library: the end-to-end tests of
// the dashboard load it in a real browser, click its buttons and take a
// screenshot. It knows the few protocol methods those tests need.
package chromium

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
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

// Browser is a running headless Chromium with a throw-away profile.
type Browser struct {
	cmd    *exec.Cmd
	dir    string
	port   string
	exited chan struct{}
	errMu  sync.Mutex
	stderr bytes.Buffer
}

type lockedWriter struct{ b *Browser }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.errMu.Lock()
	defer w.b.errMu.Unlock()
	if w.b.stderr.Len() < 1<<20 {
		w.b.stderr.Write(p)
	}
	return len(p), nil
}

// Launch starts bin headless and waits until its DevTools endpoint is up.
// The caller must Close it.
func Launch(ctx context.Context, bin string) (*Browser, error) {
	dir, err := os.MkdirTemp("", "fulcrum-chromium-")
	if err != nil {
		return nil, err
	}
	b := &Browser{dir: dir, exited: make(chan struct{})}
	b.cmd = exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
		"--hide-scrollbars", "--mute-audio", "--no-default-browser-check",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+dir, "about:blank")
	b.cmd.Stderr = lockedWriter{b}
	// Its own process group, so Close reaches the renderer and GPU
	// processes it forks too.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("chromium: %w", err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	if err := b.waitPort(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// waitPort reads the port Chromium chose from the DevToolsActivePort file
// it writes into the profile.
func (b *Browser) waitPort(ctx context.Context) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if data, err := os.ReadFile(filepath.Join(b.dir, "DevToolsActivePort")); err == nil {
			if port, _, ok := strings.Cut(string(data), "\n"); ok && port != "" {
				b.port = port
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chromium: no DevTools port: %w; stderr:\n%s", ctx.Err(), b.Stderr())
		case <-b.exited:
			return fmt.Errorf("chromium exited at start: %v; stderr:\n%s", b.cmd.ProcessState, b.Stderr())
		case <-tick.C:
		}
	}
}

// Stderr is what the browser printed, for failure messages.
func (b *Browser) Stderr() string {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.stderr.String()
}

// Close kills the browser and its children and removes the profile.
func (b *Browser) Close() {
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-b.exited:
		case <-time.After(10 * time.Second):
		}
	}
	os.RemoveAll(b.dir)
}

// Page opens a connection to the browser's first tab.
func (b *Browser) Page(ctx context.Context) (*Page, error) {
	var targets []struct {
		Type string `json:"type"`
		URL  string `json:"webSocketDebuggerUrl"`
	}
	if err := b.getJSON(ctx, http.MethodGet, "/json/list", &targets); err != nil {
		return nil, err
	}
	ws := ""
	for _, t := range targets {
		if t.Type == "page" && t.URL != "" {
			ws = t.URL
			break
		}
	}
	if ws == "" {
		var t struct {
			URL string `json:"webSocketDebuggerUrl"`
		}
		if err := b.getJSON(ctx, http.MethodPut, "/json/new?about:blank", &t); err != nil {
			return nil, err
		}
		ws = t.URL
	}
	conn, err := dialWS(ctx, ws)
	if err != nil {
		return nil, fmt.Errorf("chromium: %w", err)
	}
	p := &Page{ws: conn, pending: map[int64]chan reply{}, done: make(chan struct{})}
	go p.read()
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := p.Call(ctx, m, nil, nil); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

func (b *Browser) getJSON(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+net.JoinHostPort("127.0.0.1", b.port)+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("chromium: %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("chromium: %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// Page is one tab under remote control. Its methods may be called from
// several goroutines.
type Page struct {
	ws      *wsConn
	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan reply
	logs    []string
	done    chan struct{}
	err     error
}

type reply struct {
	result json.RawMessage
	err    error
}

type message struct {
	ID     int64           `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    string `json:"data"`
	} `json:"error,omitempty"`
}

func (p *Page) read() {
	var err error
	for {
		var data []byte
		if data, err = p.ws.readMessage(); err != nil {
			break
		}
		var m message
		if err = json.Unmarshal(data, &m); err != nil {
			err = fmt.Errorf("chromium: bad message %.200q: %w", data, err)
			break
		}
		if m.ID == 0 {
			p.event(m.Method, m.Params)
			continue
		}
		p.mu.Lock()
		ch := p.pending[m.ID]
		delete(p.pending, m.ID)
		p.mu.Unlock()
		if ch == nil {
			continue
		}
		r := reply{result: m.Result}
		if m.Error != nil {
			r.err = fmt.Errorf("chromium: %s (%d) %s", m.Error.Message, m.Error.Code, m.Error.Data)
		}
		ch <- r
	}
	p.mu.Lock()
	p.err = err
	for id, ch := range p.pending {
		ch <- reply{err: fmt.Errorf("chromium: connection lost: %w", err)}
		delete(p.pending, id)
	}
	p.mu.Unlock()
	close(p.done)
}

// event keeps what the page complained about: exceptions, console errors
// and warnings, and browser log entries (CSP violations, failed loads).
func (p *Page) event(method string, params json.RawMessage) {
	var line string
	switch method {
	case "Runtime.exceptionThrown":
		var e struct {
			Details struct {
				Text      string `json:"text"`
				URL       string `json:"url"`
				Line      int    `json:"lineNumber"`
				Exception struct {
					Description string `json:"description"`
				} `json:"exception"`
			} `json:"exceptionDetails"`
		}
		_ = json.Unmarshal(params, &e)
		d := e.Details
		line = fmt.Sprintf("exception: %s %s at %s:%d", d.Text, d.Exception.Description, d.URL, d.Line+1)
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		_ = json.Unmarshal(params, &e)
		if e.Type != "error" && e.Type != "warning" && e.Type != "assert" {
			return
		}
		var parts []string
		for _, a := range e.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = "console." + e.Type + ": " + strings.Join(parts, " ")
	case "Log.entryAdded":
		var e struct {
			Entry struct {
				Source string `json:"source"`
				Level  string `json:"level"`
				Text   string `json:"text"`
				URL    string `json:"url"`
			} `json:"entry"`
		}
		_ = json.Unmarshal(params, &e)
		if e.Entry.Level != "error" && e.Entry.Level != "warning" {
			return
		}
		line = fmt.Sprintf("log/%s/%s: %s %s", e.Entry.Source, e.Entry.Level, e.Entry.Text, e.Entry.URL)
	default:
		return
	}
	p.mu.Lock()
	p.logs = append(p.logs, line)
	p.mu.Unlock()
}

// Problems returns the exceptions, console errors and warnings, and browser
// log entries the page produced so far. Each starts with its kind:
// "exception:", "console.error:", "log/<source>/<level>:".
func (p *Page) Problems() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.logs...)
}

// Call sends a DevTools command and decodes its result into result (when
// not nil).
func (p *Page) Call(ctx context.Context, method string, params, result any) error {
	msg := map[string]any{"method": method}
	if params != nil {
		msg["params"] = params
	}
	ch := make(chan reply, 1)
	p.mu.Lock()
	if p.err != nil || isClosed(p.done) {
		p.mu.Unlock()
		return fmt.Errorf("chromium: %s: connection lost: %v", method, p.err)
	}
	p.nextID++
	id := p.nextID
	msg["id"] = id
	p.pending[id] = ch
	p.mu.Unlock()
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if err := p.ws.writeFrame(opText, data); err != nil {
		return fmt.Errorf("chromium: %s: %w", method, err)
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return fmt.Errorf("%s: %w", method, r.err)
		}
		if result != nil {
			return json.Unmarshal(r.result, result)
		}
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
		return fmt.Errorf("chromium: %s: %w", method, ctx.Err())
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// Close ends the connection (the tab stays until the browser closes).
func (p *Page) Close() {
	_ = p.ws.close()
	<-p.done
}

// SetViewport sets the page's size in CSS pixels.
func (p *Page) SetViewport(ctx context.Context, width, height int) error {
	return p.Call(ctx, "Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
	}, nil)
}

// Navigate loads url and waits until the document has loaded.
func (p *Page) Navigate(ctx context.Context, url string) error {
	var r struct {
		ErrorText string `json:"errorText"`
	}
	if err := p.Call(ctx, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("chromium: navigate to %s: %s", url, r.ErrorText)
	}
	// Page.navigate answers once the new document is committed, so this
	// polls the new document, not the old one.
	return p.WaitFor(ctx, `document.readyState === "complete"`)
}

// Eval evaluates a JavaScript expression in the page, awaiting it when it
// is a promise, and decodes its value into out (when not nil).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	var r struct {
		Result struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		Exception *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.Call(ctx, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true,
	}, &r)
	if err != nil {
		return err
	}
	if r.Exception != nil {
		return fmt.Errorf("chromium: evaluating %.80q: %s %s", expr, r.Exception.Text, r.Exception.Exception.Description)
	}
	if out == nil || r.Result.Value == nil {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// WaitFor evaluates expr until it is true or ctx ends.
func (p *Page) WaitFor(ctx context.Context, expr string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		var ok bool
		lastErr = p.Eval(ctx, "!!("+expr+")", &ok)
		if lastErr == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("chromium: waiting for %s: %w (last: %v)", expr, ctx.Err(), lastErr)
			}
			return fmt.Errorf("chromium: waiting for %s: %w", expr, ctx.Err())
		case <-tick.C:
		}
	}
}

// Click presses and releases the left mouse button over the centre of the
// first element matching a CSS selector, as a user would: the element must
// be visible and enabled.
func (p *Page) Click(ctx context.Context, selector string) error {
	var at *struct {
		X, Y     float64
		Disabled bool
	}
	err := p.Eval(ctx, `(() => {
		const e = document.querySelector(`+jsString(selector)+`);
		if (!e) return null;
		e.scrollIntoView({block: "center", inline: "center"});
		const r = e.getBoundingClientRect();
		return {x: r.x + r.width / 2, y: r.y + r.height / 2, disabled: !!e.disabled};
	})()`, &at)
	if err != nil {
		return err
	}
	if at == nil {
		return fmt.Errorf("chromium: click: no element matches %s", selector)
	}
	if at.Disabled {
		return fmt.Errorf("chromium: click: %s is disabled", selector)
	}
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		ev := map[string]any{"type": typ, "x": at.X, "y": at.Y}
		if typ != "mouseMoved" {
			ev["button"] = "left"
			ev["clickCount"] = 1
		}
		if err := p.Call(ctx, "Input.dispatchMouseEvent", ev, nil); err != nil {
			return err
		}
	}
	return nil
}

// Type focuses the element matching selector and types text into it.
func (p *Page) Type(ctx context.Context, selector, text string) error {
	var found bool
	if err := p.Eval(ctx, `(() => { const e = document.querySelector(`+jsString(selector)+`); if (!e) return false; e.focus(); return true; })()`, &found); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("chromium: type: no element matches %s", selector)
	}
	return p.Call(ctx, "Input.insertText", map[string]any{"text": text}, nil)
}

// Screenshot returns a PNG of the viewport.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	var r struct {
		Data string `json:"data"`
	}
	if err := p.Call(ctx, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return nil, err
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err == nil && !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		err = errors.New("chromium: screenshot is not a PNG")
	}
	return png, err
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
