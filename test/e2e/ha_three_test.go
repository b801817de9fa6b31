package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestHAThreeNodes: one VIP on three nodes with priorities 150, 100 and
// 50 ("two or more nodes"). kill -9 of the master moves the VIP to the
// second, kill -9 of the second to the third; restarted, each higher node
// takes it back by preempting, in turn. At every step the remaining
// backups follow the new master, and the client is served throughout.
func TestHAThreeNodes(t *testing.T) {
	t.Parallel()
	l := newHALab(t, haOpts{prio: map[string]int{"lb1": 150, "lb2": 100, "lb3": 50}})
	l.startAll()
	l.followers("lb1")

	// step makes a fault or a return and checks that master ends up the
	// only master, serving the client, with a short gap.
	step := func(what, master string, change func()) {
		t.Helper()
		p := l.probe(time.Second)
		steady(t, p, 10)
		at := time.Now()
		change()
		took := l.waitRoles(master, 10*time.Second)
		l.servedBy(p, master, at, 5*time.Second)
		steady(t, p, 10)
		o := summarize(p.finish())
		logOutage(t, what, o, at)
		t.Logf("%s: %s the only master %v after", what, master, took.Round(time.Millisecond))
		if o.gap > 2*time.Second {
			t.Errorf("%s: service gap %v, want well under 2s", what, o.gap)
		}
		if mac := l.client.neighMAC(l.vip); mac != l.lbs[master].mac {
			t.Errorf("%s: the client resolves the VIP to %q, want %s's %s", what, mac, master, l.lbs[master].mac)
		}
		l.followers(master)
	}
	step("kill -9 of lb1", "lb2", l.nodes["lb1"].kill9)
	step("kill -9 of lb2", "lb3", l.nodes["lb2"].kill9)
	step("lb2 back", "lb2", func() { l.start("lb2") })
	step("lb1 back", "lb1", func() { l.start("lb1") })
	for _, node := range []string{"lb1", "lb2"} {
		if logs := l.nodes[node].p.out.String(); !strings.Contains(logs, "reason=preempt") {
			t.Errorf("%s did not take the VIP back by preempting:\n%s", node, logs)
		}
	}
}

// followers checks that every running node but master is a backup that
// follows master at its priority.
func (l *haLab) followers(master string) {
	l.t.Helper()
	want := l.lbs[master].addr.String()
	for _, name := range l.names() {
		if name == master || l.state(name) == "down" {
			continue
		}
		// A backup learns the new master from its first advert: give it
		// a few.
		waitUntil(l.t, 5*time.Second, name+" following "+master, func() (bool, string) {
			g := l.haGroupOf(name)
			return g.State == "backup" && g.Master == want && g.MasterPriority == l.opts.prio[master],
				g.State + " following " + g.Master
		})
	}
}
