// Package ui is fulcrum's web dashboard: a static page, embedded in the
// binary, that renders GET /api/v1/status and calls the admin API's backend
// actions. It has no server-side logic of its own: the page reads and
// changes state only through the same API the CLI uses, so it needs no
// token to view and grants nothing the API does not.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Index is the page's file name; it is served at "/" and "/ui/".
const Index = "index.html"

// ContentSecurityPolicy allows the page's own script, style and API calls
// and nothing else: no inline script or style, no other origin, no framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body  []byte
	ctype string
	etag  string
}

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the dashboard: the page at "/" and "/ui/", its files at
// "/ui/<name>". Mount it for GET on both prefixes.
func Handler() http.Handler {
	files, err := load(assets)
	if err != nil {
		// The assets are compiled in; failing here is a build defect that
		// the package's tests catch.
		panic(err)
	}
	return handler{files: files}
}

func load(fsys fs.FS) (map[string]asset, error) {
	files := map[string]asset{}
	err := fs.WalkDir(fsys, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := types[path.Ext(p)]
		if !ok {
			return fmt.Errorf("ui: %s: no content type for %q", p, path.Ext(p))
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		files[path.Base(p)] = asset{body: body, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err == nil && files[Index].body == nil {
		err = fmt.Errorf("ui: assets lack %s", Index)
	}
	return files, err
}

type handler struct{ files map[string]asset }

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := Index
	if r.URL.Path != "/" {
		rest, ok := strings.CutPrefix(r.URL.Path, "/ui/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		if rest != "" {
			name = rest
		}
	}
	a, ok := h.files[name]
	if !ok || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Content-Security-Policy", ContentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")
	if name == Index {
		// The page names its scripts; never let a cache keep an old page
		// across an upgrade.
		hdr.Set("Cache-Control", "no-store")
	} else {
		// Revalidate every time: the ETag makes that a 304.
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("ETag", a.etag)
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
