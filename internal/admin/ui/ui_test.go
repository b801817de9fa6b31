package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestServesPageAndAssets(t *testing.T) {
	t.Parallel()
	h := Handler()
	tests := []struct {
		name, path, ctype, cache, contains string
	}{
		{"root is the page", "/", "text/html; charset=utf-8", "no-store", `<script src="/ui/app.js"`},
		{"ui prefix is the page", "/ui/", "text/html; charset=utf-8", "no-store", `<table id="ha"`},
		{"index by name", "/ui/index.html", "text/html; charset=utf-8", "no-store", "<title>fulcrum</title>"},
		{"script", "/ui/app.js", "text/javascript; charset=utf-8", "no-cache", "/api/v1/status"},
		{"style", "/ui/style.css", "text/css; charset=utf-8", "no-cache", "table.grid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := get(t, h, tt.path, nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status: got %d, want 200", resp.StatusCode)
			}
			for k, want := range map[string]string{
				"Content-Type":            tt.ctype,
				"Cache-Control":           tt.cache,
				"Content-Security-Policy": ContentSecurityPolicy,
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "no-referrer",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s: got %q, want %q", k, got, want)
				}
			}
			if !strings.Contains(string(body), tt.contains) {
				t.Errorf("body lacks %q", tt.contains)
			}
		})
	}
}

func TestUnknownPathsAreNotFound(t *testing.T) {
	t.Parallel()
	h := Handler()
	for _, p := range []string{"/ui/nope.js", "/ui/assets/app.js", "/ui/../ui/app.js", "/index.html", "/ui/app.js/"} {
		if got := get(t, h, p, nil).StatusCode; got != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", p, got)
		}
	}
}

func TestAssetsRevalidateWithETag(t *testing.T) {
	t.Parallel()
	h := Handler()
	first := get(t, h, "/ui/app.js", nil)
	etag := first.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on /ui/app.js")
	}
	if got := get(t, h, "/ui/app.js", map[string]string{"If-None-Match": etag}).StatusCode; got != http.StatusNotModified {
		t.Errorf("conditional GET: got %d, want 304", got)
	}
	if got := get(t, h, "/ui/style.css", nil).Header.Get("ETag"); got == etag {
		t.Errorf("style.css and app.js share the ETag %s", got)
	}
	// The page itself is never cached, so it has no validator either.
	if got := get(t, h, "/", nil).Header.Get("ETag"); got != "" {
		t.Errorf("index ETag: got %q, want none", got)
	}
}

// The Content-Security-Policy forbids inline script and style; a page that
// relied on them would render broken, so check the sources obey it.
func TestPageObeysItsPolicy(t *testing.T) {
	t.Parallel()
	files, err := load(assets)
	if err != nil {
		t.Fatal(err)
	}
	page := string(files[Index].body)
	for _, m := range regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1) {
		if !strings.Contains(m[1], `src="/ui/`) || strings.TrimSpace(m[2]) != "" {
			t.Errorf("inline or foreign script: %s", m[0])
		}
	}
	for _, re := range []string{`(?i)\son[a-z]+\s*=`, `(?i)\sstyle\s*=`, `(?i)<style`, `(?i)(src|href)="(https?:)?//`} {
		if loc := regexp.MustCompile(re).FindString(page); loc != "" {
			t.Errorf("index.html has %q, which the policy forbids", loc)
		}
	}
	// Every local file the page names is served.
	for _, m := range regexp.MustCompile(`(?:src|href)="/ui/([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if _, ok := files[m[1]]; !ok {
			t.Errorf("index.html names /ui/%s, which is not embedded", m[1])
		}
	}
	// Strings from the API reach the page as text, never as markup.
	js := string(files["app.js"].body)
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}

func TestLoadRejectsBadAssets(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fs   fstest.MapFS
		want string
	}{
		{"no index", fstest.MapFS{"assets/app.js": {Data: []byte("x")}}, "assets lack index.html"},
		{"unknown type", fstest.MapFS{"assets/index.html": {}, "assets/logo.bmp": {}}, `no content type for ".bmp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(tt.fs)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
