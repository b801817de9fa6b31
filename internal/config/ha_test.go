package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const haConfig = okService + `node: { name: lb1 }
ha:
  groups:
    - name: web
      interface: eth0
      vrid: 51
      vips: [192.168.0.105/24, 192.168.0.106]
      priority: { lb1: 150, lb2: 100 }
      preempt: false
      track: { services: [ok], interfaces: [eth1], weight: 50, scripts: [ { command: [/bin/true] } ] }
      notify: [/usr/local/bin/notify.sh]
    - name: web6
      interface: eth0
      vrid: 51
      vips: [2001:db8::105]
      priority: { lb1: 150, lb2: 100 }
      unicast_peers: [2001:db8::2]
      initdead: 0s
  sync_groups:
    - { name: both, groups: [web, web6] }
`

func TestHADefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, haConfig)
	g := c.HA.Groups[0]
	if g.HandoverTimeout.D() != 10*time.Second {
		t.Errorf("handover_timeout default %s, want 10s", g.HandoverTimeout)
	}
	if g.AdvertInterval.D() != 100*time.Millisecond || g.MasterDownAdverts != 2 || g.GARP.Repeat != 3 || g.GARP.Interval.D() != 10*time.Millisecond {
		t.Errorf("defaults: got interval %s master_down_adverts %d garp %+v", g.AdvertInterval, g.MasterDownAdverts, g.GARP)
	}
	if g.InitDead.D() != 2*time.Second || c.HA.Groups[1].InitDead != 0 {
		t.Errorf("initdead: got %s and %s, want 2s by default and 0s as given", g.InitDead, c.HA.Groups[1].InitDead)
	}
	if g.PreemptValue() || !c.HA.Groups[1].PreemptValue() {
		t.Errorf("preempt: got %v %v, want false as given and true by default", g.PreemptValue(), c.HA.Groups[1].PreemptValue())
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.168.0.105/24"), netip.MustParsePrefix("192.168.0.106/32")}
	if diff := cmp.Diff(want, g.VIPPrefixes(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("VIPs (-want +got):\n%s", diff)
	}
	if g.Track.Interval.D() != time.Second || g.Track.Scripts[0].Timeout.D() != 2*time.Second {
		t.Errorf("track defaults: got %+v", g.Track)
	}
}

func TestHAErrors(t *testing.T) {
	runErrorCases(t, []errorCase{
		{
			name: "group values",
			yaml: okService + `node: { name: lb3 }
ha:
  groups:
    - { name: web, interface: eth0, vrid: 300, vips: [192.168.0.105/24, "2001:db8::1", nope], priority: { lb1: 150, lb2: 0 }, advert_interval: 15ms }
    - { name: web, interface: eth0, vrid: 51, vips: [10.0.0.1], priority: { lb3: 100 }, unicast_peers: ["2001:db8::2"], track: { services: [nope], weight: 300 } }
    - { name: other, interface: eth0, vrid: 51, vips: [10.0.0.2], priority: { lb3: 100 }, master_down_adverts: 1 }
  sync_groups:
    - { name: s, groups: [web2] }
`,
			want: []string{
				`f.yaml:5:43: ha.groups[0].vrid: want 1-255, got 300`,
				`f.yaml:5:73: ha.groups[0].vips[1]: mixes IPv4 and IPv6: VRRP runs one group per family, use two groups`,
				`f.yaml:5:88: ha.groups[0].vips[2]: want an IP address with an optional prefix length like 192.168.0.105/24, got "nope"`,
				`f.yaml:5:105: ha.groups[0].priority: no priority for this node "lb3" (listed: "lb1" or "lb2")`,
				`f.yaml:5:122: ha.groups[0].priority.lb2: want 1-255, got 0`,
				`f.yaml:5:144: ha.groups[0].advert_interval: want a multiple of 10ms from 10ms to 40.95s, got 15ms`,
				`f.yaml:6:15: ha.groups[1].name: duplicate group name "web", first used by ha.groups[0]`,
				`f.yaml:6:105: ha.groups[1].unicast_peers[0]: want an IP address of the VIPs' family, got "2001:db8::2"`,
				`f.yaml:6:141: ha.groups[1].track.services[0]: no service named "nope"`,
				`f.yaml:6:156: ha.groups[1].track.weight: want 0 (fault) to 254, got 300`,
				`f.yaml:7:45: ha.groups[2].vrid: vrid 51 on eth0 is already used by ha.groups[1]`,
				`f.yaml:7:112: ha.groups[2].master_down_adverts: want 2-255 (RFC 9568 uses 3), got 1`,
				`f.yaml:9:26: ha.sync_groups[0].groups: want at least two groups to keep together`,
				`f.yaml:9:27: ha.sync_groups[0].groups[0]: no ha group named "web2"`,
			},
		},
	})
}

func TestHelloPort(t *testing.T) {
	base := "node: {name: lb1}\nservices: [{name: web, listen: 127.0.0.1:80, backends: [{address: 127.0.0.1:81}]}]\n"
	group := "  groups: [{name: web, interface: eth0, vrid: 51, vips: [192.0.2.5/24], priority: {lb1: 100}}]\n"
	for _, c := range []struct {
		yaml string
		want int
		err  string
	}{
		{base + "ha:\n" + group, 8051, ""},
		{base + "ha:\n  hello_port: 0\n" + group, 0, ""},
		{base + "ha:\n  hello_port: 9000\n" + group, 9000, ""},
		{base + "ha:\n  hello_port: 70000\n" + group, 0, "ha.hello_port"},
		{base, 0, ""},
		{strings.Replace(base, "listen: 127.0.0.1:80,", "listen: 127.0.0.1:8051, protocol: udp,", 1) + "ha:\n" + group, 0, "udp service web"},
	} {
		cfg, err := Parse("t.yaml", []byte(c.yaml))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.yaml, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if cfg.HA.HelloPort != c.want {
			t.Errorf("%q: hello_port %d, want %d", c.yaml, cfg.HA.HelloPort, c.want)
		}
	}
}

// TestSecretFilesAreReadAtLoad: admin.token_file and auth_key_file are read
// and checked by Load (so by `fulcrum check` as by `run`), relative to the
// config file's directory, and every problem names the field.
func TestSecretFilesAreReadAtLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("token", "0123456789abcdef-token\n")
	write("key", "  0123456789abcdef-key \n")
	write("short", "0123456789abcde\n") // 15 bytes
	cfg := func(token, key string) string {
		return okService + "node: { name: lb1 }\nadmin: { token_file: " + token + " }\n" +
			"ha:\n  groups:\n    - { name: web, interface: eth0, vrid: 51, vips: [192.0.2.5/24], priority: { lb1: 100 }, auth_key_file: " + key + " }\n"
	}
	file := filepath.Join(dir, "f.yaml")
	load := func(data string) (*Config, error) {
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(file)
	}

	c, err := load(cfg("token", filepath.Join(dir, "key")))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Admin.Token, "0123456789abcdef-token"; got != want {
		t.Errorf("Admin.Token: got %q, want %q", got, want)
	}
	if got, want := c.Admin.TokenFile, filepath.Join(dir, "token"); got != want {
		t.Errorf("Admin.TokenFile: got %q, want %q (relative to the config file)", got, want)
	}
	if got, want := string(c.HA.Groups[0].AuthKey), "0123456789abcdef-key"; got != want {
		t.Errorf("AuthKey: got %q, want %q", got, want)
	}
	if b, _ := c.Marshal(); strings.Contains(string(b), "0123456789abcdef") {
		t.Errorf("the effective config shows a secret:\n%s", b)
	}

	_, err = load(cfg("missing", "short"))
	got := errString(err)
	for _, want := range []string{
		"admin.token_file: open " + filepath.Join(dir, "missing") + ": no such file or directory",
		"ha.groups[0].auth_key_file: " + filepath.Join(dir, "short") + " holds 15 bytes; want a secret of at least 16",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors:\n%s\nwant among them: %s", got, want)
		}
	}
}
