package daemon

import (
	"context"
	"testing"
)

// TestAdminStateSharedWithPeers: a drain on one node reaches the other
// through the hello, and an enable on the other comes back; the status
// says the state is shared once both announce it, and "node" on a node
// whose hello is off.
func TestAdminStateSharedWithPeers(t *testing.T) {
	t.Parallel()
	port := freeUDPPort(t)
	cfg := helloNodeConfigs(t)
	l, h := &link{}, &holder{held: map[string]bool{}}
	lb1 := startHelloNode(t, l, h, "lb1", "127.0.0.1", cfg("127.0.0.2", "127.0.0.1", port))
	lb2 := startHelloNode(t, l, h, "lb2", "127.0.0.2", cfg("127.0.0.1", "127.0.0.2", port))
	ctx := context.Background()

	if _, err := lb1.SetAdminState(ctx, "web", "127.0.0.1:9", "drain"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "lb2 drains 127.0.0.1:9 too, and both say it is shared", func() bool {
		b1, b2 := backendOf(t, lb1, "127.0.0.1:9"), backendOf(t, lb2, "127.0.0.1:9")
		return b2.AdminState == "drain" && b2.AdminSetOn == "lb1" && b2.AdminScope == "peers" &&
			b1.AdminScope == "peers" && b1.AdminSetOn == "lb1"
	})
	if b := backendOf(t, lb2, "127.0.0.1:10"); b.AdminState != "ready" || b.AdminSetOn != "" || b.AdminScope != "" {
		t.Errorf("the other backend on lb2: %+v, want ready and untouched", b)
	}

	if _, err := lb2.SetAdminState(ctx, "web", "127.0.0.1:9", "ready"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "lb1 takes lb2's enable", func() bool {
		b := backendOf(t, lb1, "127.0.0.1:9")
		return b.AdminState == "ready" && b.AdminSetOn == "lb2" && b.AdminScope == "peers"
	})

	// A route pool's backend travels too.
	if _, err := lb2.SetAdminState(ctx, "web/api", "127.0.0.1:11", "maint"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "lb1 disables the route pool's backend too", func() bool {
		for _, r := range lb1.Status().Services[0].Routes {
			if r.Name == "web/api" && len(r.Backends) == 1 {
				b := r.Backends[0]
				return b.AdminState == "maint" && b.AdminSetOn == "lb2" && b.AdminScope == "peers"
			}
		}
		return false
	})

	// A node without the hello keeps its drain to itself, and says so.
	lb3 := startHelloNode(t, &link{}, h, "lb3", "127.0.0.3", cfg("127.0.0.1", "127.0.0.3", 0))
	if _, err := lb3.SetAdminState(ctx, "web", "127.0.0.1:10", "maint"); err != nil {
		t.Fatal(err)
	}
	if b := backendOf(t, lb3, "127.0.0.1:10"); b.AdminState != "maint" || b.AdminScope != "node" || b.AdminSetOn != "lb3" {
		t.Errorf("lb3 without hello: %+v, want maint, scope node", b)
	}
	if b := backendOf(t, lb1, "127.0.0.1:10"); b.AdminState != "ready" {
		t.Errorf("lb3's disable reached lb1: %+v", b)
	}
}
