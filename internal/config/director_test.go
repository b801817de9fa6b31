package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dirNode is the director section every director case needs.
const dirNode = "node: { name: lb1 }\ndirector: { interfaces: [eth0] }\n"

var directorCases = []errorCase{
	{
		name: "masq is refused",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, forwarding: masq, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:58: services[0].forwarding: NAT is not offered: use forwarding: proxy (proxy_protocol.send passes the client's address), direct or tunnel`},
	},
	{
		name: "nat is refused",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, forwarding: nat, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:58: services[0].forwarding: NAT is not offered: use forwarding: proxy (proxy_protocol.send passes the client's address), direct or tunnel`},
	},
	{
		name: "unknown forwarding",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, forwarding: route, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:58: services[0].forwarding: unknown value "route"; want proxy, direct (or gate, dr, droute) or tunnel (or ipip, tun)`},
	},
	{
		name: "http needs the proxy",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, protocol: http, forwarding: direct, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:56: services[0].protocol: forwarding direct takes tcp or udp, not http: HTTP needs the proxy`},
	},
	{
		name: "scheduler with connection counts",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, forwarding: tunnel, scheduler: lc, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:77: services[0].scheduler: scheduler "lc" does not work with forwarding tunnel, which keeps no connection counts; want one of rr, wrr, maglev, sh, mh`},
	},
	{
		name: "proxy keys",
		yaml: dirNode + `services:
  - name: web
    listen: 10.0.0.1:80
    forwarding: direct
    retries: 0
    timeouts: { idle: 1m }
    proxy_protocol: { send: v2 }
    max_sessions: 10
    max_sessions_per_client: 10
    slow_start: 10s
    backends: [{ address: 10.0.0.11:80, max_connections: 5 }]
`,
		want: []string{
			`f.yaml:7:14: services[0].retries: retries is a setting of the proxy; forwarding direct passes packets in the kernel (see director.flow_timeout for idle flows)`,
			`f.yaml:8:15: services[0].timeouts: timeouts is a setting of the proxy; forwarding direct passes packets in the kernel (see director.flow_timeout for idle flows)`,
			`f.yaml:9:21: services[0].proxy_protocol: proxy_protocol is a setting of the proxy; forwarding direct passes packets in the kernel (see director.flow_timeout for idle flows)`,
			`f.yaml:10:19: services[0].max_sessions: max_sessions is a setting of the proxy; forwarding direct passes packets in the kernel (see director.flow_timeout for idle flows)`,
			`f.yaml:11:30: services[0].max_sessions_per_client: max_sessions_per_client is a setting of the proxy; forwarding direct passes packets in the kernel (see director.flow_timeout for idle flows)`,
			`f.yaml:12:17: services[0].slow_start: slow_start is a setting of the proxy; forwarding direct passes packets in the kernel (see director.flow_timeout for idle flows)`,
			`f.yaml:13:58: services[0].backends[0].max_connections: forwarding direct keeps no connection counts; max_connections is for the proxy`,
		},
	},
	{
		name: "passive checks",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, forwarding: direct, health: { passive: { failures: 3 } }, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:97: services[0].health.passive.failures: passive checks watch the proxy's connects; forwarding direct sees none`},
	},
	{
		name: "backend port differs",
		yaml: dirNode + "services: [{ name: web, listen: 10.0.0.1:80, forwarding: direct, backends: [{ address: 10.0.0.11:8080 }], fallback: 10.0.0.9:81 }]\n",
		want: []string{
			`f.yaml:3:88: services[0].backends[0].address: forwarding direct cannot change ports: want port 80 as the service's (or the address alone), got "10.0.0.11:8080"`,
			`f.yaml:3:117: services[0].fallback: forwarding direct cannot change ports: want port 80 as the service's (or the address alone), got "10.0.0.9:81"`,
		},
	},
	{
		name: "port-0 service with a backend port",
		yaml: dirNode + "services: [{ name: all, listen: 10.0.0.1:0, forwarding: direct, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:87: services[0].backends[0].address: forwarding direct cannot change ports: give the backend without a port (or port 0) on a port-0 service, got "10.0.0.11:80"`},
	},
	{
		name: "port 0 for the proxy",
		yaml: "services: [{ name: all, listen: 10.0.0.1:0, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:33: services[0].listen: want ip:port with a port of 1-65535, got "10.0.0.1:0" (port 0, all ports, is for forwarding direct or tunnel)`},
	},
	{
		name: "bare backend address for the proxy",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11 }] }]\n",
		want: []string{`f.yaml:1:68: services[0].backends[0].address: want ip:port like 192.0.2.1:80 or [2001:db8::1]:80, got "10.0.0.11"`},
	},
	{
		name: "port-0 service checks need a port",
		yaml: dirNode + `services:
  - name: all
    listen: 10.0.0.1:0
    forwarding: direct
    health: { type: http }
    backends:
      - address: 10.0.0.11
      - address: 10.0.0.12
        health: { type: tcp }
      - address: 10.0.0.13
        health: { port: 8080 }
`,
		want: []string{
			`f.yaml:7:13: services[0].health: the backends of a port-0 service have no port to check: give health.port`,
			`f.yaml:11:17: services[0].backends[1].health: the backends of a port-0 service have no port to check: give health.port`,
		},
	},
	{
		name: "unspecified VIP",
		yaml: dirNode + "services: [{ name: web, listen: 0.0.0.0:80, forwarding: direct, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:3:33: services[0].listen: want the VIP's ip:port: forwarding direct matches packets to one address, got "0.0.0.0:80"`},
	},
	{
		name: "same VIP and port as a proxied service",
		yaml: dirNode + `services:
  - { name: proxied, listen: 10.0.0.1:80, backends: [{ address: 10.0.0.11:80 }] }
  - { name: direct, listen: 10.0.0.1:80, forwarding: direct, backends: [{ address: 10.0.0.11:80 }] }
`,
		want: []string{`f.yaml:5:29: services[1].listen: tcp 10.0.0.1:80 is already used by services[0] ("proxied", the proxy): a packet to it goes one way only`},
	},
	{
		name: "proxied port on an all-ports VIP",
		yaml: dirNode + `services:
  - { name: all, listen: 10.0.0.1:0, forwarding: direct, backends: [{ address: 10.0.0.11 }] }
  - { name: smtp, listen: 10.0.0.1:25, backends: [{ address: 10.0.0.11:25 }] }
  - { name: dns, protocol: udp, listen: 10.0.0.1:53, backends: [{ address: 10.0.0.11:53 }] }
`,
		want: []string{`f.yaml:5:27: services[1].listen: tcp 10.0.0.1:25 is on the VIP of services[0] ("all"), whose forwarding direct takes all the VIP's ports: the proxy would never see a packet; give "all" a port or move this service`},
	},
	{
		name: "group on a proxied service",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, persistence: { group: shop }, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:68: services[0].persistence.group: shared persistence groups are for forwarding direct or tunnel; a proxied service has a table of its own`},
	},
	{
		name: "group across VIPs and settings",
		yaml: dirNode + `services:
  - { name: a, listen: 10.0.0.1:80, forwarding: direct, persistence: { group: shop }, backends: [{ address: 10.0.0.11 }] }
  - { name: b, listen: 10.0.0.2:443, forwarding: direct, persistence: { group: shop }, backends: [{ address: 10.0.0.11 }] }
  - { name: c, listen: 10.0.0.1:443, forwarding: direct, persistence: { group: shop, timeout: 60s }, backends: [{ address: 10.0.0.11 }] }
  - { name: d, listen: 10.0.0.1:8443, forwarding: direct, persistence: { group: "my shop" }, backends: [{ address: 10.0.0.11 }] }
`,
		want: []string{
			`f.yaml:5:80: services[1].persistence.group: group "shop" is on VIP 10.0.0.1 (services[0], "a"); a persistence group belongs to one VIP`,
			`f.yaml:6:80: services[2].persistence.group: group "shop" has timeout 6m, netmask 32, netmask6 128 in services[0] ("a"); its services share one table and must agree`,
			`f.yaml:7:81: services[3].persistence.group: invalid name "my shop": want letters, digits, '_', '.' and '-', starting with a letter or digit`,
		},
	},
	{
		name: "interfaces required",
		yaml: "services: [{ name: web, listen: 10.0.0.1:80, forwarding: direct, backends: [{ address: 10.0.0.11:80 }] }]\n",
		want: []string{`f.yaml:1:58: services[0].forwarding: forwarding direct needs director.interfaces: name the interfaces where VIP traffic arrives`},
	},
	{
		name: "director settings",
		yaml: `director:
  interfaces: [eth0, "", eth0, "a/b"]
  xdp_mode: driver
  flow_table_size: 100
  flow_timeout: 0s
  tunnel_source: 0.0.0.0
` + okService,
		want: []string{
			`f.yaml:2:22: director.interfaces[1]: want an interface name like eth0, got ""`,
			`f.yaml:2:26: director.interfaces[2]: duplicate interface "eth0", first at director.interfaces[0]`,
			`f.yaml:2:32: director.interfaces[3]: want an interface name like eth0, got "a/b"`,
			`f.yaml:3:13: director.xdp_mode: unknown value "driver"; want "auto", "native" or "generic"`,
			`f.yaml:4:20: director.flow_table_size: want 1024-67108864, got 100`,
			`f.yaml:5:17: director.flow_timeout: want a duration above 0, got 0s`,
			`f.yaml:6:18: director.tunnel_source: want an IP address of this node, got "0.0.0.0"`,
		},
	},
	{
		name: "sync off but configured",
		yaml: "director: { sync: { peers: [10.0.0.2:8848], max_rate: 5 } }\n" + okService,
		want: []string{
			`f.yaml:1:28: director.sync.peers: the sync is off: give director.sync.listen to turn it on`,
			`f.yaml:1:55: director.sync.max_rate: the sync is off: give director.sync.listen to turn it on`,
		},
	},
	{
		name: "sync without peers",
		yaml: "director: { sync: { listen: 0.0.0.0:8848, max_rate: 0 } }\n" + okService,
		want: []string{
			`f.yaml:1:19: director.sync.peers: required: no ha group has unicast_peers to take the sync's peers from`,
			`f.yaml:1:53: director.sync.max_rate: want at least 1 entry per second, got 0`,
		},
	},
	{
		name: "sync on the hello port",
		yaml: "director: { sync: { listen: 0.0.0.0:8051 } }\nha: { groups: [ { name: g, interface: eth0, vrid: 1, vips: [10.0.0.9], priority: { lb1: 1 }, unicast_peers: [10.0.0.2] } ] }\nnode: { name: lb1 }\n" + okService,
		want: []string{`f.yaml:1:29: director.sync.listen: port 8051 is ha.hello_port; the sync needs a port of its own`},
	},
	{
		name: "sync peers",
		yaml: "director: { sync: { listen: 0.0.0.0:8848, peers: [10.0.0.2, \"0.0.0.0:8848\"], auth_key_file: testdata/error-503.html } }\n" + okService,
		want: []string{
			`f.yaml:1:51: director.sync.peers[0]: want ip:port like 192.0.2.1:80 or [2001:db8::1]:80, got "10.0.0.2"`,
			`f.yaml:1:61: director.sync.peers[1]: want the ip:port of one host, got "0.0.0.0:8848"`,
		},
	},
}

func TestDirectorErrors(t *testing.T) {
	t.Parallel()
	runErrorCases(t, directorCases)
}

func TestDirectorDefaults(t *testing.T) {
	t.Parallel()
	c := mustParse(t, `node: { name: lb1 }
director:
  interfaces: [eth0]
  sync: { listen: "[::]:8848" }
services:
  - name: web
    listen: 10.0.0.1:80
    forwarding: droute
    backends: [{ address: 10.0.0.11 }, { address: 10.0.0.12:80 }]
    fallback: 10.0.0.9
  - name: all
    listen: "[2001:db8::1]:0"
    forwarding: tun
    backends: [{ address: "2001:db8::11" }]
ha:
  groups:
    - { name: a, interface: eth0, vrid: 1, vips: [10.0.0.1], priority: { lb1: 2, lb2: 1 }, unicast_peers: [10.0.0.3], auth_key_file: testdata/admin.token }
    - { name: b, interface: eth0, vrid: 2, vips: ["2001:db8::1"], priority: { lb1: 2, lb2: 1 }, unicast_peers: ["2001:db8::3"] }
    - { name: c, interface: eth1, vrid: 2, vips: [10.0.1.1], priority: { lb1: 2, lb2: 1 }, unicast_peers: [10.0.0.3] }
`)
	want := Director{
		Interfaces: []string{"eth0"}, XDPMode: "auto", FlowTableSize: 262144, FlowTimeout: Duration(defaultFlowTimeout),
		Sync: FlowSync{
			Listen:      "[::]:8848",
			Peers:       []string{"10.0.0.3:8848", "[2001:db8::3]:8848"},
			AuthKeyFile: c.HA.Groups[0].AuthKeyFile,
			AuthKey:     c.HA.Groups[0].AuthKey,
			MaxRate:     50000,
		},
	}
	if diff := cmp.Diff(want, c.Director); diff != "" {
		t.Errorf("director (-want +got):\n%s", diff)
	}
	if len(c.Director.Sync.AuthKey) == 0 {
		t.Errorf("sync auth key: got none, want the first HA group's")
	}
	web, all := c.Services[0], c.Services[1]
	for _, tt := range []struct{ what, got, want string }{
		{"web forwarding", web.Forwarding, ForwardDirect},
		{"web scheduler", web.Scheduler, "maglev"},
		{"web backend without port", web.Backends[0].Address, "10.0.0.11:80"},
		{"web fallback without port", web.Fallback, "10.0.0.9:80"},
		{"all forwarding", all.Forwarding, ForwardTunnel},
		{"all backend", all.Backends[0].Address, "[2001:db8::11]:0"},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.what, tt.got, tt.want)
		}
	}
	if web.Retries != nil || web.Timeouts != (Timeouts{}) || web.MaxSessions != 0 {
		t.Errorf("a director service got the proxy's defaults: retries %v, timeouts %+v, max_sessions %d", web.Retries, web.Timeouts, web.MaxSessions)
	}
	if !web.InKernel() || !c.UsesDirector() {
		t.Errorf("InKernel %v, UsesDirector %v: want true, true", web.InKernel(), c.UsesDirector())
	}
	checkRoundTrip(t, c)
}

func TestForwardingSpellings(t *testing.T) {
	t.Parallel()
	for spelling, want := range map[string]string{
		"": ForwardProxy, "proxy": ForwardProxy,
		"direct": ForwardDirect, "gate": ForwardDirect, "dr": ForwardDirect, "droute": ForwardDirect,
		"tunnel": ForwardTunnel, "ipip": ForwardTunnel, "tun": ForwardTunnel,
	} {
		t.Run(spelling, func(t *testing.T) {
			t.Parallel()
			fw := ""
			if spelling != "" {
				fw = ", forwarding: " + spelling
			}
			c := mustParse(t, dirNode+"services: [{ name: web, listen: 10.0.0.1:80"+fw+", backends: [{ address: 10.0.0.11:80 }] }]\n")
			if got := c.Services[0].Forwarding; got != want {
				t.Errorf("forwarding %q: got %q, want %q", spelling, got, want)
			}
			if got, err := ParseForwarding(spelling); spelling != "" && (got != want || err != nil) {
				t.Errorf("ParseForwarding(%q) = %q, %v; want %q", spelling, got, err, want)
			}
		})
	}
	for _, s := range []string{"masq", "NAT", "masquerading"} {
		if _, err := ParseForwarding(s); !errors.Is(err, ErrNAT) {
			t.Errorf("ParseForwarding(%q): %v, want ErrNAT", s, err)
		}
	}
	if _, err := ParseForwarding("Direct"); err == nil || err.Error() != `unknown value "Direct"; want proxy, direct (or gate, dr, droute) or tunnel (or ipip, tun)` {
		t.Errorf("ParseForwarding(Direct): %v", err)
	}
}

// TestNoDirectorSection: a config without director services and without
// the section leaves it empty, so the effective config does not show it.
func TestNoDirectorSection(t *testing.T) {
	t.Parallel()
	c := mustParse(t, okService)
	if diff := cmp.Diff(Director{}, c.Director); diff != "" {
		t.Errorf("director (-want +got):\n%s", diff)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "director") {
		t.Errorf("effective config shows the director:\n%s", out)
	}
}

// TestHashIgnoresDirectorNodeSettings: nodes name their own interfaces,
// addresses and sync peers; everything else of the director must match.
func TestHashIgnoresDirectorNodeSettings(t *testing.T) {
	t.Parallel()
	base := mustParse(t, "node: { name: lb1 }\ndirector: { interfaces: [eth0], sync: { listen: 0.0.0.0:8848, peers: [10.0.0.2:8848, 10.0.0.3:8848] } }\nservices: [{ name: web, listen: 10.0.0.1:80, forwarding: direct, backends: [{ address: 10.0.0.11 }] }]\n")
	other := mustParse(t, "node: { name: lb1 }\ndirector: { interfaces: [ens3, ens4], tunnel_source: 10.0.0.5, sync: { listen: 10.0.0.5:8848, peers: [10.0.0.6:8848] } }\nservices: [{ name: web, listen: 10.0.0.1:80, forwarding: direct, backends: [{ address: 10.0.0.11 }] }]\n")
	if base.Hash() != other.Hash() {
		t.Errorf("hash differs for node-specific director settings")
	}
	changed := mustParse(t, "node: { name: lb1 }\ndirector: { interfaces: [eth0], flow_timeout: 60s, sync: { listen: 0.0.0.0:8848, peers: [10.0.0.2:8848] } }\nservices: [{ name: web, listen: 10.0.0.1:80, forwarding: direct, backends: [{ address: 10.0.0.11 }] }]\n")
	if base.Hash() == changed.Hash() {
		t.Errorf("hash equal although flow_timeout differs")
	}
}
