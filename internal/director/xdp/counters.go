//go:build linux

package xdp

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Counters are a slot's traffic, summed over CPUs.
type Counters struct{ Packets, Bytes, NewFlows uint64 }

// reasons names the program's global counters (enum reason in bpf/xdp.h).
var reasons = [...]string{
	bpfReasonR_TX:                  "tx",
	bpfReasonR_REDIRECT:            "redirect",
	bpfReasonR_ICMP:                "icmp",
	bpfReasonR_PASSED_UNKNOWN:      "passed_unknown",
	bpfReasonR_PASSED_VLAN:         "passed_vlan",
	bpfReasonR_PASSED_NOT_LOCAL:    "passed_not_local",
	bpfReasonR_PASSED_FRAGMENT:     "passed_fragment",
	bpfReasonR_PASSED_IP_OPTIONS:   "passed_ip_options",
	bpfReasonR_PASSED_IPV6EXT:      "passed_ipv6_ext",
	bpfReasonR_PASSED_NO_SERVICE:   "passed_no_service",
	bpfReasonR_PASSED_NO_BACKEND:   "passed_no_backend",
	bpfReasonR_PASSED_TOO_BIG:      "passed_too_big",
	bpfReasonR_PASSED_ICMP_NO_FLOW: "passed_icmp_no_flow",
	bpfReasonR_PASSED_ENCAP_FAILED: "passed_encap_failed",
	bpfReasonR_DROPPED_MALFORMED:   "dropped_malformed",
	bpfReasonR_EVENTS_LOST:         "events_lost",
	bpfReasonR_FLOWS_NEW:           "flows_new",
	bpfReasonR_FLOWS_RESCHEDULED:   "flows_rescheduled",
	bpfReasonR_FLOWS_PERSISTED:     "flows_persisted",
}

// SlotCounters returns slot's packets, bytes (as received, Ethernet header
// included) and new flows since the program was loaded.
func (p *Program) SlotCounters(slot uint32) (Counters, error) {
	var per []bpfCounters
	if err := p.objs.SlotCounters.Lookup(slot, &per); err != nil {
		return Counters{}, fmt.Errorf("xdp: counters of slot %d: %w", slot, err)
	}
	var c Counters
	for _, v := range per {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
		c.NewFlows += v.NewFlows
	}
	return c, nil
}

// ClearSlotCounters zeroes slot's counters, for a slot given to another
// backend.
func (p *Program) ClearSlotCounters(slot uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("xdp: %w", err)
	}
	if err := p.objs.SlotCounters.Put(slot, make([]bpfCounters, n)); err != nil {
		return fmt.Errorf("xdp: counters of slot %d: %w", slot, err)
	}
	return nil
}

// Global returns the program's counters by reason: what it forwarded (tx,
// redirect; icmp of them were ICMP errors following their flow), what it
// passed to the kernel and why (passed_*), dropped (dropped_malformed:
// packets the kernel would drop too), events_lost (new-flow events the
// ring buffer had no room for) and flows_new, flows_rescheduled,
// flows_persisted.
func (p *Program) Global() (map[string]uint64, error) {
	m := make(map[string]uint64, len(reasons))
	for i, name := range reasons {
		var per []uint64
		if err := p.objs.Global.Lookup(uint32(i), &per); err != nil {
			return nil, fmt.Errorf("xdp: counter %s: %w", name, err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		m[name] = n
	}
	return m, nil
}
