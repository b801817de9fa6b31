package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// Source supplies the state the API shows. Status is called from the API's
// request goroutines, concurrently; it must return a fresh copy.
type Source interface {
	Status() Status
}

// Controller carries out the API's actions. Its methods are called from
// request goroutines, concurrently.
type Controller interface {
	// ReleaseGroup hands an HA group's VIPs to a peer.
	ReleaseGroup(ctx context.Context, name string) error
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
}

// Server is the admin HTTP API.
type Server struct {
	opt Options
	log *slog.Logger
	srv *http.Server
}

// New returns a server.
func New(opt Options) *Server {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Token == nil {
		opt.Token = func() string { return "" }
	}
	s := &Server{opt: opt, log: opt.Log.With("component", "admin")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/status", s.status)
	mux.HandleFunc("POST /api/v1/ha/{group}/release", s.mutation(s.release))
	mux.Handle("GET /metrics", metricsHandler(opt.Source, s.log))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	s.srv = &http.Server{
		Handler:           mux,
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

// mutation guards an action: the bearer token when one is configured,
// else a loopback client; every attempt is logged.
func (s *Server) mutation(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		client := r.RemoteAddr
		if token := s.opt.Token(); token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				s.log.Warn("admin action refused: bad or missing token", "client", client, "path", r.URL.Path)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
				return
			}
		} else if ap, err := netip.ParseAddrPort(client); err != nil || !ap.Addr().Unmap().IsLoopback() {
			s.log.Warn("admin action refused: no token configured and the client is not local", "client", client, "path", r.URL.Path)
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "set admin.token_file to allow actions from other hosts"})
			return
		}
		if s.opt.Control == nil {
			writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "no controller"})
			return
		}
		s.log.Info("admin action", "client", client, "method", r.Method, "path", r.URL.Path)
		h(w, r)
	}
}

func (s *Server) release(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	group := r.PathValue("group")
	if err := s.opt.Control.ReleaseGroup(ctx, group); err != nil {
		code := http.StatusConflict
		if strings.Contains(err.Error(), "no such") {
			code = http.StatusNotFound
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"released": group})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
