// Package demo starts a complete fulcrum setup on loopback for a first
// look: demo backends (HTTP over TCP, and UDP echo) and a config that puts
// a balancer in front of them.
package demo

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"text/template"
	"time"
)

//go:embed demo.yaml.tmpl
var configTemplate string

// Addrs are the balancer's own listen addresses.
type Addrs struct {
	Web, UDP, Admin string
}

// Backend is one demo backend in the rendered config.
type Backend struct {
	Addr   string
	Weight int
}

// Setup is a running set of demo backends and the config that fronts them.
type Setup struct {
	Config []byte
	close  []func()
}

// Start starts three HTTP backends (weights 1, 2, 3) and two UDP echo
// backends on ephemeral loopback ports and renders the balancer config.
func Start(a Addrs) (*Setup, error) {
	s := &Setup{}
	var web, udp []Backend
	for i := 1; i <= 3; i++ {
		addr, err := s.startHTTP(i)
		if err != nil {
			s.Close()
			return nil, err
		}
		web = append(web, Backend{Addr: addr, Weight: i})
	}
	for i := 1; i <= 2; i++ {
		addr, err := s.startUDPEcho(i)
		if err != nil {
			s.Close()
			return nil, err
		}
		udp = append(udp, Backend{Addr: addr})
	}
	var buf bytes.Buffer
	t := template.Must(template.New("demo").Parse(configTemplate))
	err := t.Execute(&buf, map[string]any{
		"Admin": a.Admin, "Web": a.Web, "UDP": a.UDP, "WebBackends": web, "UDPBackends": udp,
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Config = buf.Bytes()
	return s, nil
}

// Close stops every demo backend.
func (s *Setup) Close() {
	for _, f := range s.close {
		f()
	}
}

func (s *Setup) startHTTP(n int) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "hello from demo backend %d (%s); you are %s\n", n, ln.Addr(), r.RemoteAddr)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("demo backend %d: %v\n", n, err)
		}
	}()
	s.close = append(s.close, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return ln.Addr().String(), nil
}

func (s *Setup) startUDPEcho(n int) (string, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("demo: %w", err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		prefix := fmt.Appendf(nil, "echo from demo backend %d: ", n)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := append(append([]byte{}, prefix...), buf[:k]...)
			_, _ = pc.WriteTo(reply, from)
		}
	}()
	s.close = append(s.close, func() { pc.Close() })
	return pc.LocalAddr().String(), nil
}
