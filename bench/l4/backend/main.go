// Command backend is the real server behind the proxies in the layer-4
// benchmark (bench/l4/run.sh). It is deliberately cheap per byte and per
// connection so that what the benchmark measures is the proxy in front of
// it, not the backend.
//
// It serves two protocols, each on its own listeners:
//
//	-reply ADDR[,ADDR...]  request/response: read a SIZE-byte request, write
//	                       a SIZE-byte reply, repeat until the client sends
//	                       EOF, then close. The client closes first, as in
//	                       the connection-rate test.
//	-bulk ADDR[,ADDR...]   bulk transfer: read one command byte, then
//	                       'D' (download): write CHUNK-byte blocks until the
//	                           peer goes away;
//	                       'U' (upload): read and discard until EOF.
//
// Every connection is served by its own goroutine, the reply and the bulk
// block are allocated once, and nothing is logged per connection. The
// program runs until it receives SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
)

func main() {
	var (
		replyAddrs = flag.String("reply", "", "comma-separated `addresses` for the request/reply protocol")
		bulkAddrs  = flag.String("bulk", "", "comma-separated `addresses` for the bulk protocol")
		size       = flag.Int("size", 64, "request and reply size in `bytes` (reply protocol)")
		chunk      = flag.Int("chunk", 256<<10, "write/read block size in `bytes` (bulk protocol)")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("backend: ")
	if *replyAddrs == "" && *bulkAddrs == "" {
		log.Fatal("nothing to serve: give -reply and/or -bulk")
	}
	if *size <= 0 || *chunk <= 0 {
		log.Fatal("-size and -chunk must be positive")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s := &server{reply: make([]byte, *size), block: make([]byte, *chunk)}
	for i := range s.reply {
		s.reply[i] = 'r'
	}
	for i := range s.block {
		s.block[i] = byte(i)
	}

	var lns []net.Listener
	listen := func(addrs string, serve func(net.Conn)) {
		for _, a := range splitList(addrs) {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				log.Fatalf("listen %s: %v", a, err)
			}
			lns = append(lns, ln)
			go s.acceptLoop(ln, serve)
		}
	}
	listen(*replyAddrs, s.serveReply)
	listen(*bulkAddrs, s.serveBulk)

	<-ctx.Done()
	for _, ln := range lns {
		ln.Close()
	}
	if n := s.errors.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "backend: %d connections ended with an unexpected error\n", n)
	}
}

type server struct {
	reply  []byte // the reply, shared read-only by every connection
	block  []byte // the bulk block, shared read-only by every connection
	errors atomic.Int64
}

func (s *server) acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: keep serving; the load generator counts
			// the failed connections.
			s.errors.Add(1)
			continue
		}
		go serve(c)
	}
}

// serveReply answers every SIZE-byte request with a SIZE-byte reply until
// EOF.
func (s *server) serveReply(c net.Conn) {
	defer c.Close()
	req := make([]byte, len(s.reply))
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			if err != io.EOF && !isReset(err) {
				s.errors.Add(1)
			}
			return
		}
		if _, err := c.Write(s.reply); err != nil {
			if !isReset(err) {
				s.errors.Add(1)
			}
			return
		}
	}
}

// serveBulk reads a one-byte command and streams (D) or sinks (U) data.
func (s *server) serveBulk(c net.Conn) {
	defer c.Close()
	var cmd [1]byte
	if _, err := io.ReadFull(c, cmd[:]); err != nil {
		return
	}
	switch cmd[0] {
	case 'D':
		// Writing stops when the client closes (EPIPE / ECONNRESET).
		for {
			if _, err := c.Write(s.block); err != nil {
				return
			}
		}
	case 'U':
		buf := make([]byte, len(s.block))
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	default:
		s.errors.Add(1)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
