package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin/ui"
)

// Source supplies the state the API shows. Status is called from the API's
// request goroutines, concurrently; it must return a fresh copy.
type Source interface {
	Status() Status
}

// Controller carries out the API's actions. Its methods are called from
// request goroutines, concurrently.
//
// Errors wrap ErrNotFound or ErrInvalid where those apply; any other
// error is answered 500 (409 for ReleaseGroup and ReclaimGroup).
type Controller interface {
	// ReleaseGroup hands an HA group's VIPs to a peer.
	ReleaseGroup(ctx context.Context, name string) error
	// ReclaimGroup undoes ReleaseGroup: the node preempts again as
	// configured.
	ReclaimGroup(ctx context.Context, name string) error
	// SetAdminState puts a backend in "ready", "drain" or "maint".
	SetAdminState(ctx context.Context, service, address, state string) (Backend, error)
	// SetWeight sets a backend's weight until the next reload.
	SetWeight(ctx context.Context, service, address string, weight int) (Backend, error)
	// AddBackend adds a backend to a service until the next reload.
	AddBackend(ctx context.Context, service string, b NewBackend) (Backend, error)
	// RemoveBackend removes a backend until the next reload and returns
	// it as it was last seen.
	RemoveBackend(ctx context.Context, service, address string) (Backend, error)
	// ReloadConfig reloads the config file as SIGHUP does and returns the
	// new config hash; a rejected file is a *RejectedError.
	ReloadConfig(ctx context.Context) (string, error)
}

// Options configure a Server.
type Options struct {
	Source  Source
	Control Controller // nil: actions answer 501
	// Token returns the bearer token actions require; "" means none is
	// configured, and actions are then accepted from loopback clients
	// only.
	Token func() string
	Log   *slog.Logger
	// HistoryInterval and HistoryWindow set how often the node samples
	// its status for GET /api/v1/history and how long it keeps the
	// samples; 0: every 2 s, for 10 minutes.
	HistoryInterval, HistoryWindow time.Duration
}

// Server is the admin HTTP API.
type Server struct {
	opt     Options
	log     *slog.Logger
	srv     *http.Server
	refused refusals
	hist    *history
}

// New returns a server.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Token == nil {
		opt.Token = func() string { return "" }
	}
	s := &Server{opt: opt, log: opt.Log.With("component", "admin"),
		hist: newHistory(opt.Source, opt.HistoryInterval, opt.HistoryWindow)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("GET /api/v1/history", s.history)
	mux.HandleFunc("POST /api/v1/ha/{group}/release", s.mutation(s.haAction(Controller.ReleaseGroup, "released")))
	mux.HandleFunc("POST /api/v1/ha/{group}/reclaim", s.mutation(s.haAction(Controller.ReclaimGroup, "reclaimed")))
	mux.Handle("GET /metrics", metricsHandler(opt.Source, s.log, newRefusalCollector(&s.refused)))
	mux.HandleFunc("POST /api/v1/services/{service}/backends/{address}/drain", s.mutation(s.adminState("drain")))
	mux.HandleFunc("POST /api/v1/services/{service}/backends/{address}/disable", s.mutation(s.adminState("maint")))
	mux.HandleFunc("POST /api/v1/services/{service}/backends/{address}/enable", s.mutation(s.adminState("ready")))
	mux.HandleFunc("PUT /api/v1/services/{service}/backends/{address}/weight", s.mutation(s.weight))
	mux.HandleFunc("POST /api/v1/services/{service}/backends", s.mutation(s.addBackend))
	mux.HandleFunc("DELETE /api/v1/services/{service}/backends/{address}", s.mutation(s.removeBackend))
	mux.HandleFunc("POST /api/v1/reload", s.mutation(s.reload))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	dashboard := ui.Handler()
	mux.Handle("GET /{$}", dashboard)
	mux.Handle("GET /ui/", dashboard)
	// A page on another site that the operator's browser visits must not
	// be able to act on a loopback admin API: a "simple" cross-site POST
	// needs no preflight. Browsers say where a request comes from
	// (Sec-Fetch-Site, Origin); the CLI sends neither and is unaffected.
	// A page that rebinds its own name to this node's address is not
	// cross-origin to the browser: hostGuard refuses names first.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(s.crossOrigin))
	s.srv = &http.Server{
		Handler:           s.hostGuard(csrf.Handler(mux)),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve answers on ln until ctx is done, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hctx, stopHistory := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.hist.run(hctx)
	}()
	defer func() {
		// The sampler ends after the status read it may be in; never let
		// a status that hangs hang the shutdown too.
		stopHistory()
		select {
		case <-sampled:
		case <-time.After(5 * time.Second):
		}
	}()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.opt.Source.Status())
}

func (s *Server) crossOrigin(w http.ResponseWriter, r *http.Request) {
	s.refused.add(refusedCrossOrigin)
	s.log.Warn("admin action refused: cross-origin browser request", "client", r.RemoteAddr, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
	writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused: use the dashboard served by this node, or the CLI"})
}

// mutation guards an action: the bearer token when one is configured,
// else a loopback client; every attempt is logged.
func (s *Server) mutation(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		client := r.RemoteAddr
		if token := s.opt.Token(); token != "" {
			got, ok := bearerToken(r.Header.Get("Authorization"))
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				s.refused.add(refusedToken)
				s.log.Warn("admin action refused: bad or missing token", "client", client, "path", r.URL.Path)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
				return
			}
		} else if ap, err := netip.ParseAddrPort(client); err != nil || !ap.Addr().Unmap().IsLoopback() {
			s.refused.add(refusedNotLocal)
			s.log.Warn("admin action refused: no token configured and the client is not local", "client", client, "path", r.URL.Path)
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "set admin.token_file to allow actions from other hosts"})
			return
		}
		if s.opt.Control == nil {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "no controller"})
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		s.log.Info("admin action", "client", client, "method", r.Method, "path", r.URL.Path,
			"status", rec.code, "result", rec.result)
	}
}

// statusRecorder keeps what an action answered, for the log line.
type statusRecorder struct {
	http.ResponseWriter
	code   int
	result string
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// fail answers err with the status its kind calls for.
func (s *Server) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusServiceUnavailable
	}
	msg := strings.TrimSuffix(strings.TrimSuffix(err.Error(), ": "+ErrInvalid.Error()), ": "+ErrNotFound.Error())
	if rec, ok := w.(*statusRecorder); ok {
		rec.result = msg
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

func succeeded(w http.ResponseWriter, result string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.result = result
	}
}

func (s *Server) adminState(state string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		b, err := s.opt.Control.SetAdminState(ctx, r.PathValue("service"), r.PathValue("address"), state)
		if err != nil {
			s.fail(w, err)
			return
		}
		succeeded(w, "admin_state "+b.AdminState)
		writeJSON(w, http.StatusOK, b)
	}
}

// maxBody bounds the JSON bodies actions read.
const maxBody = 4096

func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body: %v: %w", err, ErrInvalid)
	}
	if dec.More() {
		return fmt.Errorf("body: more than one JSON value: %w", ErrInvalid)
	}
	return nil
}

func (s *Server) weight(w http.ResponseWriter, r *http.Request) {
	var req WeightRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	if req.Weight == nil {
		s.fail(w, fmt.Errorf(`body: want {"weight": N}: %w`, ErrInvalid))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	b, err := s.opt.Control.SetWeight(ctx, r.PathValue("service"), r.PathValue("address"), *req.Weight)
	if err != nil {
		s.fail(w, err)
		return
	}
	succeeded(w, fmt.Sprintf("weight %d", b.Weight))
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) addBackend(w http.ResponseWriter, r *http.Request) {
	var req NewBackend
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	b, err := s.opt.Control.AddBackend(ctx, r.PathValue("service"), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	succeeded(w, "added "+b.Address)
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) removeBackend(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	b, err := s.opt.Control.RemoveBackend(ctx, r.PathValue("service"), r.PathValue("address"))
	if err != nil {
		s.fail(w, err)
		return
	}
	succeeded(w, "removed "+b.Address)
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	hash, err := s.opt.Control.ReloadConfig(ctx)
	var rej *RejectedError
	switch {
	case errors.As(err, &rej):
		if rec, ok := w.(*statusRecorder); ok {
			rec.result = fmt.Sprintf("rejected with %d errors", len(rej.Errors))
		}
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error":  "config rejected, running config unchanged",
			"errors": rej.Errors,
		})
	case err != nil:
		s.fail(w, err)
	default:
		succeeded(w, "reloaded, config "+hash)
		writeJSON(w, http.StatusOK, ReloadResult{OK: true, ConfigHash: hash})
	}
}

// haAction runs do on the path's group and answers {done: group}; an
// unknown group is 404, a group in the wrong state (not master, not
// released) 409.
func (s *Server) haAction(do func(c Controller, ctx context.Context, group string) error, done string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		group := r.PathValue("group")
		if err := do(s.opt.Control, ctx, group); err != nil {
			code := http.StatusConflict
			if strings.Contains(err.Error(), "no such") {
				code = http.StatusNotFound
			}
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{done: group})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
