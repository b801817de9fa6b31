package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
	"github.com/fulcrum-lb/fulcrum/internal/vrrp"
)

// startStagedDaemon runs a daemon whose HA pieces are fakes: the VRRP
// socket of a group on interface "bad0" cannot be opened, and the hello
// uses real UDP sockets on 127.0.0.1.
func startStagedDaemon(t *testing.T, yaml string) *testDaemon {
	t.Helper()
	src := netip.MustParseAddr("192.0.2.1")
	l, h := &link{}, &holder{held: map[string]bool{}}
	return startDaemonWith(t, yaml, ha.Deps{
		Listen: func(o vrrp.ConnOptions) (vrrp.Conn, error) {
			if o.Interface == "bad0" {
				return nil, fmt.Errorf("vrrp socket on %s: no such device", o.Interface)
			}
			return l.listen(src), nil
		},
		PrimaryAddr: func(string, vrrp.Family) (netip.Addr, error) { return src, nil },
		Announcer: func(*config.HAGroup, *slog.Logger) (vrrp.Announcer, error) {
			return fakeAnnouncer{h: h, node: "lb1"}, nil
		},
		LinkUp: func(string) (bool, error) { return true, nil },
		HelloListen: func(is6 bool, port int) (net.PacketConn, error) {
			if is6 {
				return nil, fmt.Errorf("no IPv6 in this test")
			}
			return net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		},
	})
}

func canListen(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// TestApplyFailedStageRollsBack makes each stage of a reload fail in turn
// while the others prepare fine: the reload is refused with the stage's
// error, what the other stages opened is closed again (the new service's
// port, the new admin address, the hello port), and the running config,
// its services and its HA groups are as they were.
func TestApplyFailedStageRollsBack(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// extra returns what the reload adds besides a new service; busy
		// is a TCP address the test holds.
		extra func(t *testing.T, busy string) (services, admin, ha string)
		want  []string
	}{
		{"listener", func(t *testing.T, busy string) (string, string, string) {
			return svcYAML("busy", busy, echoBackend(t, "x")), "", ""
		}, []string{"service busy", "address already in use"}},
		{"admin", func(t *testing.T, busy string) (string, string, string) {
			return "", "admin: { listen: " + busy + " }\n", ""
		}, []string{"admin", "address already in use"}},
		{"access log", func(t *testing.T, busy string) (string, string, string) {
			// A dangling link passes validation (its directory exists)
			// but cannot be opened.
			dir := t.TempDir()
			path := filepath.Join(dir, "access.log")
			if err := os.Symlink(filepath.Join(dir, "gone", "access.log"), path); err != nil {
				t.Fatal(err)
			}
			svc := fmt.Sprintf("  - name: www\n    listen: %s\n    protocol: http\n    backends: [ { address: %s } ]\n    http: { access_log: { path: %s } }\n",
				freeTCP(t), httpBackend(t, "x"), path)
			return svc, "", ""
		}, []string{"service www", "no such file"}},
		{"ha group", func(t *testing.T, busy string) (string, string, string) {
			return "", "", "ha:\n  groups: [ { name: g, interface: bad0, vrid: 7, vips: [192.0.2.100], priority: { lb1: 150 } } ]\n"
		}, []string{"ha group g", "no such device"}},
		{"hello", func(t *testing.T, busy string) (string, string, string) {
			hold, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { hold.Close() })
			return "", "", fmt.Sprintf("ha:\n  hello_port: %d\n  groups: [ { name: g, interface: eth0, vrid: 7, vips: [192.0.2.100], priority: { lb1: 150 }, unicast_peers: [127.0.0.2] } ]\n",
				hold.LocalAddr().(*net.UDPAddr).Port)
		}, []string{"address already in use"}},
		{"listener, with an ha group and hello prepared", func(t *testing.T, busy string) (string, string, string) {
			// HA prepares fine (its VRRP socket, the hello on a free
			// port); the rollback must close them again.
			c, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
			t.Cleanup(func() {
				c, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Errorf("the hello socket prepared for the failed reload is still open: %v", err)
					return
				}
				c.Close()
			})
			return svcYAML("busy", busy, echoBackend(t, "x")), "", fmt.Sprintf("ha:\n  hello_port: %d\n  groups: [ { name: g, interface: eth0, vrid: 7, vips: [192.0.2.100], priority: { lb1: 150 }, unicast_peers: [127.0.0.2] } ]\n", port)
		}, []string{"service busy", "address already in use"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			web, b1 := freeTCP(t), echoBackend(t, "b1")
			base := "node: { name: lb1 }\nadmin: { listen: \"off\" }\nservices:\n" + svcYAML("web", web, b1)
			td := startStagedDaemon(t, base)
			hash := td.d.Status().ConfigHash

			busyLn, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busyLn.Close()
			services, adminYAML, haYAML := tt.extra(t, busyLn.Addr().String())
			fresh := freeTCP(t) // a new service the reload also brings
			if adminYAML == "" {
				adminYAML = "admin: { listen: \"off\" }\n"
			}
			yaml := "node: { name: lb1 }\n" + adminYAML + "services:\n" + svcYAML("web", web, b1) + svcYAML("fresh", fresh, b1) + services + haYAML
			err = td.reload(yaml)
			if err == nil {
				t.Fatal("reload: got nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("reload error %q, want it to say %q", err, w)
				}
			}
			st := td.d.Status()
			if st.ConfigHash != hash || len(st.Services) != 1 || len(st.HA) != 0 || td.d.AdminAddr() != "" {
				t.Errorf("after the failed reload: hash %s services %d ha %d admin %q; want the running config untouched",
					st.ConfigHash, len(st.Services), len(st.HA), td.d.AdminAddr())
			}
			if !canListen(fresh) {
				t.Errorf("the new service's socket %s was not closed by the rollback", fresh)
			}
			if got := ask(t, web); got != "b1" {
				t.Errorf("the running service after the failed reload: got %q, want b1", got)
			}
			if td.d.ha.Hello() != nil {
				t.Error("a hello endpoint runs after the failed reload")
			}
			// The same config without the failing part applies.
			if err := td.reload(base); err != nil {
				t.Errorf("reload of the running config: %v", err)
			}
		})
	}
}

// TestApplyReportsEveryStageError: two stages fail, both are reported.
func TestApplyReportsEveryStageError(t *testing.T) {
	t.Parallel()
	web, b1 := freeTCP(t), echoBackend(t, "b1")
	td := startDaemon(t, "admin: { listen: \"off\" }\nservices:\n"+svcYAML("web", web, b1))
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	err = td.reload("admin: { listen: " + busy.Addr().String() + " }\nservices:\n" +
		svcYAML("web", web, b1) + svcYAML("busy", busy.Addr().String(), b1))
	if err == nil || !strings.Contains(err.Error(), "admin: ") || !strings.Contains(err.Error(), "service busy") {
		t.Errorf("reload with two failing stages: got %v, want both errors", err)
	}
}

// TestRuntimeChangesTouchOnlyWhatTheyChange: weight, add, remove, drain,
// disable and enable change backends only. They do not re-read the config
// (and with it the token file), reopen access logs or reset the health
// watches — as a reload does.
func TestRuntimeChangesTouchOnlyWhatTheyChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile, logPath := filepath.Join(dir, "token"), filepath.Join(dir, "access.log")
	const token1, token2 = "first-token-0123456789", "second-token-0123456789"
	writeFile(t, tokenFile, token1)
	b1, b2, b3 := httpBackend(t, "b1"), httpBackend(t, "b2"), httpBackend(t, "b3")
	web := freeTCP(t)
	yaml := fmt.Sprintf(`admin: { listen: %s, token_file: %s }
services:
  - name: web
    listen: %s
    protocol: http
    health: { type: tcp, interval: 50ms, timeout: 1s, rise: 1, fall: 1 }
    backends: [ { address: %s }, { address: %s } ]
    http: { access_log: { path: %s } }
`, freeTCP(t), tokenFile, web, b1, b2, logPath)
	td := startDaemon(t, yaml)
	get(t, "http://"+web+"/")
	// What a reload would pick up: a new token, a rotated log.
	writeFile(t, tokenFile, token2)
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		t.Helper()
		if got := td.d.adminToken(); got != token1 {
			t.Errorf("%s: token %q, want the one read at the last reload", what, got)
		}
		if _, err := os.Stat(logPath); err == nil {
			t.Errorf("%s: the access log was reopened", what)
		}
	}
	watches := td.d.watches.Load()
	b1Since := backendOf(t, td.d, b1).Health.Since

	steps := []struct {
		what string
		do   func() error
		// same: the health watches stay the very same table.
		same bool
	}{
		{"weight", func() error { _, err := td.d.SetWeight(ctx(t), "web", b2, 5); return err }, true},
		{"drain", func() error { _, err := td.d.SetAdminState(ctx(t), "web", b2, "drain"); return err }, true},
		{"disable", func() error { _, err := td.d.SetAdminState(ctx(t), "web", b2, "maint"); return err }, true},
		{"enable", func() error { _, err := td.d.SetAdminState(ctx(t), "web", b2, "ready"); return err }, true},
		{"add", func() error { _, err := td.d.AddBackend(ctx(t), "web", admin.NewBackend{Address: b3}); return err }, false},
		{"remove", func() error { _, err := td.d.RemoveBackend(ctx(t), "web", b3); return err }, false},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.what, err)
		}
		check(s.what)
		if s.same && td.d.watches.Load() != watches {
			t.Errorf("%s: the health watches were replaced", s.what)
		}
		watches = td.d.watches.Load()
		// The probe of a backend the change did not touch keeps its state.
		if got := backendOf(t, td.d, b1).Health.Since; !got.Equal(b1Since) {
			t.Errorf("%s: b1's health restarted (since %v, want %v)", s.what, got, b1Since)
		}
	}
	// The requests still log, to the file open before the rotation.
	get(t, "http://"+web+"/")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(logPath + ".1")
		if strings.Count(string(b), "\n") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated log has %q, want two requests", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A reload does pick both up.
	if err := td.reload(yaml); err != nil {
		t.Fatal(err)
	}
	if got := td.d.adminToken(); got != token2 {
		t.Errorf("after reload: token %q, want the new one", got)
	}
	if _, err := os.Stat(logPath); err != nil {
		t.Errorf("after reload: access log not reopened: %v", err)
	}
}

// TestRunStages: every stage prepares even after one failed (all errors
// at once); a failure rolls back the prepared stages latest first and
// commits none; success commits all in order and rolls back none.
func TestRunStages(t *testing.T) {
	t.Parallel()
	var calls []string
	st := func(name string, fail bool) stage {
		return stage{
			prepare: func() error {
				calls = append(calls, "prepare "+name)
				if fail {
					return fmt.Errorf("%s failed", name)
				}
				return nil
			},
			commit:   func() { calls = append(calls, "commit "+name) },
			rollback: func() { calls = append(calls, "rollback "+name) },
		}
	}
	err := runStages(st("a", false), st("b", true), st("c", false), st("d", true))
	if err == nil || !strings.Contains(err.Error(), "b failed") || !strings.Contains(err.Error(), "d failed") {
		t.Errorf("error: got %v, want both failures", err)
	}
	want := "prepare a,prepare b,prepare c,prepare d,rollback c,rollback a"
	if got := strings.Join(calls, ","); got != want {
		t.Errorf("failed run: got %s, want %s", got, want)
	}
	calls = nil
	if err := runStages(st("a", false), stage{commit: func() { calls = append(calls, "commit only") }}, st("b", false)); err != nil {
		t.Fatal(err)
	}
	want = "prepare a,prepare b,commit a,commit only,commit b"
	if got := strings.Join(calls, ","); got != want {
		t.Errorf("successful run: got %s, want %s", got, want)
	}
}
