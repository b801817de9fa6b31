// Package e2e runs the real fulcrum binary against real sockets.
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/freeport"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fulcrum-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fulcrum")
	build := exec.Command("go", "build", "-race", "-o", binary, "../../cmd/fulcrum")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fulcrum:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address for a server the test starts later,
// fulcrum's or its own (see package freeport: a TCP port stays reserved
// until the test ends, so no parallel test and no outgoing connection can
// take it meanwhile).
func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		return freeport.UDP(t)
	}
	return freeport.TCP(t)
}

// node is a running fulcrum process.
type node struct {
	t      *testing.T
	cmd    *exec.Cmd
	config string
	admin  string
	mu     sync.Mutex
	logs   strings.Builder
	exited chan struct{}
	err    error
}

// startNode writes cfg (with ADMIN replaced by a free address) and runs
// fulcrum on it until the test ends.
func startNode(t *testing.T, cfg string) *node {
	t.Helper()
	return startNodeEnv(t, cfg, nil)
}

// startNodeEnv is startNode with extra environment variables.
func startNodeEnv(t *testing.T, cfg string, env []string) *node {
	t.Helper()
	n := &node{t: t, admin: freeAddr(t, "tcp"), exited: make(chan struct{})}
	n.config = filepath.Join(t.TempDir(), "fulcrum.yaml")
	n.writeConfig(cfg)
	n.cmd = exec.Command(binary, "run", "-c", n.config)
	n.cmd.Env = append(os.Environ(), env...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			n.mu.Lock()
			n.logs.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
	}()
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		<-n.exited
		if t.Failed() {
			t.Logf("fulcrum logs:\n%s", n.Logs())
		}
	})
	n.waitReady()
	return n
}

func (n *node) writeConfig(cfg string) {
	n.t.Helper()
	cfg = strings.ReplaceAll(cfg, "ADMIN", n.admin)
	if err := os.WriteFile(n.config, []byte(cfg), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) Logs() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.logs.String()
}

func (n *node) waitReady() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			n.t.Fatalf("fulcrum exited at start: %v\n%s", n.err, n.Logs())
		default:
		}
		resp, err := http.Get("http://" + n.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			// The answer must be ours, not another fulcrum's on an
			// address taken from under us.
			if st := n.status(); st.ConfigFile != n.config {
				n.t.Fatalf("admin API %s answered with the status of config %q, want ours %q", n.admin, st.ConfigFile, n.config)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.t.Fatalf("fulcrum not ready after 30s\n%s", n.Logs())
}

// service returns the status of the service named name, failing the test
// with what the status holds when it has none.
func (n *node) service(name string) admin.Service {
	n.t.Helper()
	st := n.status()
	var names []string
	for _, s := range st.Services {
		if s.Name == name {
			return s
		}
		names = append(names, s.Name)
	}
	n.t.Fatalf("status of %s (config %s) has no service %q, only %q", n.admin, st.ConfigFile, name, names)
	return admin.Service{}
}

func (n *node) status() *admin.Status {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := admin.FetchStatus(ctx, n.admin)
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

func (n *node) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatal(err)
	}
}

// reload rewrites the config, sends SIGHUP and waits until the reload
// counters move.
func (n *node) reload(cfg string) admin.Reloads {
	n.t.Helper()
	before := n.status().Reloads
	n.writeConfig(cfg)
	n.signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r := n.status().Reloads
		if r.OK+r.Failed > before.OK+before.Failed {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.t.Fatalf("reload not reported within 10s")
	return admin.Reloads{}
}

// waitExit waits for the process to exit and returns its error.
func (n *node) waitExit(timeout time.Duration) error {
	n.t.Helper()
	select {
	case <-n.exited:
		return n.err
	case <-time.After(timeout):
		n.t.Fatalf("fulcrum did not exit within %v", timeout)
		return nil
	}
}

// tcpBackend answers every line it reads with "NAME:line\n" until EOF.
type tcpBackend struct {
	name string
	addr string
	*connServer
}

// connServer serves a listener's connections with one handler each, on
// goroutines of their own, and keeps them so that closeAll can cut every
// one: a server that dies, not one that drains.
type connServer struct {
	ln   net.Listener
	mu   sync.Mutex
	conn map[net.Conn]bool
}

func serveConns(ln net.Listener, handle func(net.Conn)) *connServer {
	s := &connServer{ln: ln, conn: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conn[c] = true
			s.mu.Unlock()
			go func() {
				defer func() {
					c.Close()
					s.mu.Lock()
					delete(s.conn, c)
					s.mu.Unlock()
				}()
				handle(c)
			}()
		}
	}()
	return s
}

// closeAll closes the listener and every connection.
func (s *connServer) closeAll() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conn {
		c.Close()
	}
}

// backendIPs hands every backend its own loopback address, so the port
// of a killed backend cannot be taken over by another parallel test.
var backendIPs atomic.Uint32

func uniqueLoopback() string {
	n := backendIPs.Add(1)
	return fmt.Sprintf("127.1.%d.%d", n/250, 1+n%250)
}

func startTCPBackend(t *testing.T, name string) *tcpBackend {
	t.Helper()
	ln, err := net.Listen("tcp", uniqueLoopback()+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &tcpBackend{name: name, addr: ln.Addr().String()}
	b.connServer = serveConns(ln, b.serve)
	t.Cleanup(b.kill)
	return b
}

func (b *tcpBackend) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(c, b.name+":"+line); err != nil {
			return
		}
	}
}

// kill closes the listener and every connection: the backend is dead.
func (b *tcpBackend) kill() { b.closeAll() }

// ask opens a connection to addr, sends one line and returns the name of
// the backend that answered.
func ask(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return askOn(c)
}

func askOn(c net.Conn) (string, error) {
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read reply: %w", err)
	}
	name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
	if !ok || rest != "ping" {
		return "", fmt.Errorf("bad reply %q", line)
	}
	return name, nil
}
