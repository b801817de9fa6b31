package realserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The sysctls of a real server. The kernel applies the larger of
// net.ipv4.conf.all.X and net.ipv4.conf.IFACE.X for each of them.
const (
	// arp_ignore 1: answer an ARP request only for an address of the
	// interface it arrived on, so not for a VIP held on lo. (2 and 8 are
	// stricter and do as well; 3 would answer for a VIP of global scope.)
	arpIgnore = "arp_ignore"
	// arp_announce 2: the source address of our own ARP requests is one
	// of the outgoing interface's, never a VIP a reply was sent from, so
	// no neighbour learns the VIP at this host's MAC.
	arpAnnounce = "arp_announce"
	// rp_filter 1 (strict) drops a packet whose source the host would not
	// route back through the interface it came in on; a tunnelled one
	// comes in on tunl0 (or, decapsulated by XDP, on a link the client may
	// not be routed by). 2 (loose) only asks that the source be routable.
	rpFilter = "rp_filter"
)

func confPath(iface, key string) string {
	return filepath.Join("/proc/sys/net/ipv4/conf", iface, key)
}

// sysctlName turns /proc/sys/net/ipv4/conf/eth0/arp_ignore into
// net.ipv4.conf.eth0.arp_ignore.
func sysctlName(path string) string {
	return strings.ReplaceAll(strings.TrimPrefix(path, "/proc/sys/"), "/", ".")
}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("sysctl %s: %w", sysctlName(path), err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(path, v string) error {
	if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
		return fmt.Errorf("sysctl %s = %s: %w", sysctlName(path), v, err)
	}
	return nil
}
