package netif

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/fulcrum-lb/fulcrum/internal/runner"
)

// Handover holds the packet-filter rules of a planned hand-over of one
// group's VIPs, installed with nft(8), so that the connections the old
// master has on the VIPs survive the neighbours' move to the new master:
//
//   - Relay, on the new master: a TCP packet to a VIP that opens no
//     connection here (no SYN) and belongs to none we know — conntrack
//     sees it as new — is one of the old master's connections. It is
//     copied to the old master unchanged (nft's dup, the destination still
//     the VIP, which the old master still holds) and dropped here, instead
//     of being answered with a reset. So is a FIN or RST that conntrack
//     cannot place (it does not pick up a connection from its FIN): the
//     end of one of the old master's connections, which it must see to
//     close it. (A FIN or RST of one of our own connections that conntrack
//     finds out of its window would go too; the old master, knowing no such
//     connection, at worst resets one that was ending anyway.)
//   - Quiet, on the old master while it keeps the VIPs for those
//     connections: it sends no ARP with a VIP as the sender address and no
//     neighbour advertisement for a VIP, so no neighbour moves back to it.
//
// Each group has its own tables, named after the interface index and the
// VRID; installing replaces them atomically and Stop removes them. Relay
// relies on conntrack picking up connections in mid-stream, the kernel's
// default (net.netfilter.nf_conntrack_tcp_loose=1).
type Handover struct {
	ifname string
	vrid   uint8
	// run executes nft with the given standard input; a field so that
	// tests can see the rules without root.
	run func(ctx context.Context, stdin string, args ...string) error
}

// ErrNoNft is wrapped by Handover's errors when nft(8) is not installed.
var ErrNoNft = errors.New("nft not found (install nftables)")

// NewHandover returns the hand-over rules of the group vrid on ifname.
func NewHandover(ifname string, vrid uint8) *Handover {
	return &Handover{ifname: ifname, vrid: vrid, run: runNft}
}

func runNft(ctx context.Context, stdin string, args ...string) error {
	path, err := exec.LookPath("nft")
	if err != nil {
		return ErrNoNft
	}
	res, err := runner.Run(ctx, runner.Command{
		Argv:  append([]string{path}, args...),
		Stdin: []byte(stdin),
	})
	if err == nil {
		err = res.Err() // names the exit status and nft's last line of complaint
	}
	if err != nil {
		return fmt.Errorf("nft %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// Relay passes the packets of connections this node does not know, sent
// to vips, to the previous master prev.
func (h *Handover) Relay(ctx context.Context, vips []netip.Addr, prev netip.Addr) error {
	if len(vips) == 0 || !prev.IsValid() {
		return errors.New("relay: no addresses")
	}
	fam, match := "ip", "ip daddr"
	if vips[0].Is6() {
		fam, match = "ip6", "ip6 daddr"
	}
	table, err := h.table("relay")
	if err != nil {
		return err
	}
	rules := fmt.Sprintf(`table %[1]s %[2]s
delete table %[1]s %[2]s
table %[1]s %[2]s {
	chain prerouting {
		type filter hook prerouting priority -150; policy accept;
		%[3]s { %[4]s } ct state new tcp flags & syn == 0 dup to %[5]s device %[6]q drop
		%[3]s { %[4]s } ct state invalid tcp flags & (fin | rst) != 0 dup to %[5]s device %[6]q drop
	}
}
`, fam, table, match, addrList(vips), prev.WithZone(""), h.ifname)
	return h.run(ctx, rules, "-f", "-")
}

// Quiet keeps this node from announcing vips while it still holds them.
func (h *Handover) Quiet(ctx context.Context, vips []netip.Addr) error {
	if len(vips) == 0 {
		return errors.New("quiet: no addresses")
	}
	table, err := h.table("quiet")
	if err != nil {
		return err
	}
	var rules string
	if vips[0].Is4() {
		rules = fmt.Sprintf(`table arp %[1]s
delete table arp %[1]s
table arp %[1]s {
	chain output {
		type filter hook output priority 0; policy accept;
		oifname %[2]q arp saddr ip { %[3]s } drop
	}
}
`, table, h.ifname, addrList(vips))
	} else {
		// The target address of a neighbour advertisement is 8 bytes into
		// its ICMPv6 header; nft matches it as a raw 128-bit field.
		var b strings.Builder
		fmt.Fprintf(&b, "table ip6 %[1]s\ndelete table ip6 %[1]s\ntable ip6 %[1]s {\n\tchain output {\n\t\ttype filter hook output priority 0; policy accept;\n", table)
		for _, v := range vips {
			a := v.As16()
			fmt.Fprintf(&b, "\t\toifname %q icmpv6 type nd-neighbor-advert @th,64,128 0x%s drop\n", h.ifname, hex.EncodeToString(a[:]))
		}
		b.WriteString("\t}\n}\n")
		rules = b.String()
	}
	return h.run(ctx, rules, "-f", "-")
}

// StopRelay removes the Relay rules, if any.
func (h *Handover) StopRelay(ctx context.Context) error { return h.remove(ctx, "relay", "ip", "ip6") }

// StopQuiet removes the Quiet rules, if any.
func (h *Handover) StopQuiet(ctx context.Context) error { return h.remove(ctx, "quiet", "arp", "ip6") }

// remove deletes the kind's tables of every family; declaring a table
// before deleting it makes the deletion succeed when there is none.
func (h *Handover) remove(ctx context.Context, kind string, families ...string) error {
	table, err := h.table(kind)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, f := range families {
		fmt.Fprintf(&b, "table %[1]s %[2]s\ndelete table %[1]s %[2]s\n", f, table)
	}
	return h.run(ctx, b.String(), "-f", "-")
}

// table names the group's table of kind. Interface names may hold
// characters nft does not take in a name; its index will do.
func (h *Handover) table(kind string) (string, error) {
	ifi, err := net.InterfaceByName(h.ifname)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", ErrNoInterface, h.ifname, err)
	}
	return fmt.Sprintf("fulcrum_%s_if%d_vrid%d", kind, ifi.Index, h.vrid), nil
}

func addrList(vips []netip.Addr) string {
	s := make([]string, len(vips))
	for i, v := range vips {
		s[i] = v.WithZone("").String()
	}
	return strings.Join(s, ", ")
}
