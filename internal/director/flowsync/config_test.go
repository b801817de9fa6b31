package flowsync

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	tb, res := newFakeTable(), &fakeResolver{}
	if s, err := Open(config.Director{}, "lb1", tb, nil, res, nil); s != nil || err != nil {
		t.Fatalf("sync off: got %v, %v; want nil, nil", s, err)
	}
	d := config.Director{FlowTimeout: config.Duration(time.Minute), Sync: config.FlowSync{Listen: "127.0.0.1:0",
		Peers: []string{"127.0.0.1:8848", "[::1]:8848"}, AuthKey: secret, MaxRate: 100}}
	s, err := Open(d, "lb1", tb, nil, res, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.opt.Conn.Close()
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:8848"), netip.MustParseAddrPort("[::1]:8848")}
	if s.opt.MaxRate != 100 || s.opt.FlowTimeout != time.Minute || s.key == nil || len(s.opt.Peers) != 2 ||
		s.opt.Peers[0] != want[0] || s.opt.Peers[1] != want[1] || s.Status().Listen == "" {
		t.Errorf("got options %+v", s.opt)
	}
	// The same file on every node names this node too: it is left out.
	port := s.opt.Conn.LocalAddr().(*net.UDPAddr).Port
	d.Sync.Peers = []string{fmt.Sprintf("127.0.0.1:%d", port), "127.0.0.1:8848", fmt.Sprintf("127.0.0.2:%d", port)}
	d.Sync.Listen = fmt.Sprintf("127.0.0.1:%d", port)
	s.opt.Conn.Close()
	if s, err = Open(d, "lb1", tb, nil, res, nil); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.opt.Peers); got != fmt.Sprintf("[127.0.0.1:8848 127.0.0.2:%d]", port) {
		t.Errorf("peers with this node's own address: got %s, want it left out", got)
	}
	s.opt.Conn.Close()
	d.Sync.Peers = []string{"lb2"}
	if s, err := Open(d, "lb1", tb, nil, res, nil); err == nil {
		s.opt.Conn.Close()
		t.Error("a peer that is no ip:port was accepted")
	}
}
