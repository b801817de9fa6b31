// Package flowsync keeps a director's flows alive when it dies, as the
// IPVS sync daemon (LVSSyncDaemonSwap in the Ultra Monkey tutorial) does
// for LVS: the directors of a cluster send each other the flow and
// persistence entries that their own Maglev tables would not reproduce,
// over UDP, and install what they receive in their kernel flow tables.
//
// Every director computes the same Maglev table for the same config and
// health, so after a fail-over most flows land on the same backend
// anyway. The ones that would not are those created by persistence and
// those created before the table changed (a backend added, removed,
// reweighted or gone down); see Syncer.RingChanged and the Policy in
// docs/director.md ("Flow sync"). Entries name backends by address and
// services by VIP, port and protocol, never by slot: slot numbers are
// local to each node; a Resolver maps them back on the receiver.
package flowsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Wire format, version 1 (all integers big-endian):
//
//	offset  size  field
//	0       15    magic "FULCRUM-FSYNC 1" (the version is its last byte)
//	15      1     flags: bit 0 set when a MAC follows; other bits zero
//	16      8     sequence number: per sender, +1 per datagram
//	24      8     sender's clock, Unix nanoseconds
//	32      1     n, length of the sender's node name (1-64)
//	33      n     node name
//	33+n    1     k, number of entries (1-255)
//	34+n    ...   k entries, each a kind byte and its fields:
//	                1 flow:    proto (6 TCP, 17 UDP), client addr, client
//	                           port (2), VIP addr, VIP port (2), backend addr
//	                2 persist: group VIP addr, group name hash (8), masked
//	                           client addr, backend addr
//	                3 join:    nothing ("send me your table")
//	                4 done:    nothing ("that was all of my table": ends the
//	                           answer to a join)
//	              an addr is its length (4 or 16) and its bytes; a flow's
//	              client and VIP are of one family, a persistence entry's
//	              VIP and client too; a backend may be of either family.
//	end-32  32    flag bit 0 only: HMAC-SHA256 of everything before it
//
// Nothing may follow: a datagram of any other length is rejected. A whole
// datagram is at most MaxLen bytes, which keeps it in one IPv4 or IPv6
// packet on any link with the usual 1500-byte MTU (and in a tunnel's).
const (
	Magic   = "FULCRUM-FSYNC 1"
	flagMAC = 1
	macLen  = sha256.Size
	// MaxLen bounds a datagram.
	MaxLen = 1400
	// MaxNode bounds the sender's node name.
	MaxNode = 64
	// MaxEntries bounds the entries of one datagram (the count is a byte).
	MaxEntries = 255
	fixedLen   = len(Magic) + 1 + 8 + 8
)

// Kind is an entry's kind.
type Kind uint8

// Entry kinds.
const (
	KindFlow    Kind = 1
	KindPersist Kind = 2
	KindJoin    Kind = 3
	KindDone    Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindFlow:
		return "flow"
	case KindPersist:
		return "persist"
	case KindJoin:
		return "join"
	case KindDone:
		return "done"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Errors Parse and Append wrap.
var (
	ErrMalformed = errors.New("malformed sync datagram")
	ErrAuth      = errors.New("sync datagram authentication failed")
)

// Entry is one item of a datagram. Which fields count depends on Kind:
//
//	flow:    Proto, Client (address and port), VIP (address and port), Backend
//	persist: VIP (address; port 0), Group, Client (masked address; port 0), Backend
//	join, done: none
type Entry struct {
	Kind    Kind
	Proto   uint8
	Client  netip.AddrPort
	VIP     netip.AddrPort
	Group   uint64
	Backend netip.Addr
}

// Datagram is one sync message.
type Datagram struct {
	Node string
	Seq  uint64
	// Time is the sender's clock when it sent the datagram.
	Time    time.Time
	Entries []Entry
	// Authenticated is set by Parse when a MAC was present and checked.
	Authenticated bool
}

// Key derives the sync key from a group's auth key. The label keeps it
// apart from the hello's and the VRRP trailer's uses of the same secret.
func Key(authKey []byte) []byte {
	h := hmac.New(sha256.New, authKey)
	h.Write([]byte("fulcrum flowsync v1"))
	return h.Sum(nil)
}

// GroupHash is how a persistence group's name travels: the first 8 bytes
// of its SHA-256. Two nodes agree on a group when they agree on its VIP
// and on this hash of its name.
func GroupHash(name string) uint64 {
	s := sha256.Sum256([]byte(name))
	return binary.BigEndian.Uint64(s[:8])
}

// HeaderLen is the size of a datagram from node with no entries yet,
// counting the MAC when sealed.
func HeaderLen(node string, sealed bool) int {
	n := fixedLen + 1 + len(node) + 1
	if sealed {
		n += macLen
	}
	return n
}

// Len is e's encoded size.
func (e *Entry) Len() int {
	switch e.Kind {
	case KindFlow:
		return 1 + 1 + addrLen(e.Client.Addr()) + 2 + addrLen(e.VIP.Addr()) + 2 + addrLen(e.Backend)
	case KindPersist:
		return 1 + addrLen(e.VIP.Addr()) + 8 + addrLen(e.Client.Addr()) + addrLen(e.Backend)
	}
	return 1
}

func addrLen(a netip.Addr) int {
	if a.Is4() {
		return 1 + 4
	}
	return 1 + 16
}

// check reports what makes e impossible to encode or meaningless.
func (e *Entry) check() error {
	valid := func(a netip.Addr) bool { return a.IsValid() && a.Zone() == "" }
	switch e.Kind {
	case KindFlow:
		if e.Proto != 6 && e.Proto != 17 {
			return fmt.Errorf("flow: protocol %d is neither TCP nor UDP", e.Proto)
		}
		if !valid(e.Client.Addr()) || !valid(e.VIP.Addr()) || !valid(e.Backend) {
			return fmt.Errorf("flow %v -> %v via %v: an address is missing or zoned", e.Client, e.VIP, e.Backend)
		}
		if e.Client.Addr().Is4() != e.VIP.Addr().Is4() {
			return fmt.Errorf("flow %v -> %v: client and VIP of different families", e.Client, e.VIP)
		}
	case KindPersist:
		if !valid(e.Client.Addr()) || !valid(e.VIP.Addr()) || !valid(e.Backend) {
			return fmt.Errorf("persist %v for %v via %v: an address is missing or zoned", e.Client.Addr(), e.VIP.Addr(), e.Backend)
		}
		if e.Client.Addr().Is4() != e.VIP.Addr().Is4() {
			return fmt.Errorf("persist %v for %v: client and VIP of different families", e.Client.Addr(), e.VIP.Addr())
		}
		if e.Client.Port() != 0 || e.VIP.Port() != 0 || e.Proto != 0 {
			return fmt.Errorf("persist %v for %v: ports and protocol must be zero", e.Client, e.VIP)
		}
	case KindJoin, KindDone:
		if *e != (Entry{Kind: e.Kind}) {
			return fmt.Errorf("%v: carries fields", e.Kind)
		}
	default:
		return fmt.Errorf("unknown entry kind %d", e.Kind)
	}
	return nil
}

// Append appends d to dst, with a MAC under key (from Key) when key is
// not nil. It fails, leaving dst as it was, when d has no entries, more
// than MaxEntries, an entry that cannot be encoded, or would exceed MaxLen.
func (d *Datagram) Append(dst []byte, key []byte) ([]byte, error) {
	if len(d.Node) == 0 || len(d.Node) > MaxNode {
		return dst, fmt.Errorf("flowsync: node name %q not 1-%d bytes", d.Node, MaxNode)
	}
	if len(d.Entries) == 0 || len(d.Entries) > MaxEntries {
		return dst, fmt.Errorf("flowsync: %d entries, want 1-%d", len(d.Entries), MaxEntries)
	}
	size := HeaderLen(d.Node, key != nil)
	for i := range d.Entries {
		if err := d.Entries[i].check(); err != nil {
			return dst, fmt.Errorf("flowsync: entry %d: %w", i, err)
		}
		size += d.Entries[i].Len()
	}
	if size > MaxLen {
		return dst, fmt.Errorf("flowsync: %d bytes, more than %d", size, MaxLen)
	}
	start := len(dst)
	dst = append(dst, Magic...)
	var flags byte
	if key != nil {
		flags = flagMAC
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint64(dst, d.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(d.Time.UnixNano()))
	dst = append(dst, byte(len(d.Node)))
	dst = append(dst, d.Node...)
	dst = append(dst, byte(len(d.Entries)))
	for i := range d.Entries {
		dst = d.Entries[i].append(dst)
	}
	if key != nil {
		dst = append(dst, mac(key, dst[start:])...)
	}
	return dst, nil
}

func (e *Entry) append(dst []byte) []byte {
	dst = append(dst, byte(e.Kind))
	switch e.Kind {
	case KindFlow:
		dst = append(dst, e.Proto)
		dst = appendAddr(dst, e.Client.Addr())
		dst = binary.BigEndian.AppendUint16(dst, e.Client.Port())
		dst = appendAddr(dst, e.VIP.Addr())
		dst = binary.BigEndian.AppendUint16(dst, e.VIP.Port())
		dst = appendAddr(dst, e.Backend)
	case KindPersist:
		dst = appendAddr(dst, e.VIP.Addr())
		dst = binary.BigEndian.AppendUint64(dst, e.Group)
		dst = appendAddr(dst, e.Client.Addr())
		dst = appendAddr(dst, e.Backend)
	}
	return dst
}

func appendAddr(dst []byte, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append(append(dst, 4), b[:]...)
	}
	b := a.As16()
	return append(append(dst, 16), b[:]...)
}

// Parse decodes one datagram. With a key it requires a valid MAC;
// without one, a MAC is accepted unchecked (the receiver has no means to
// check it) and Authenticated stays false. Replays are the receiver's to
// catch (see Syncer): Parse has no memory.
func Parse(b []byte, key []byte) (Datagram, error) {
	var d Datagram
	if len(b) < fixedLen+1+1+1+1 || len(b) > MaxLen {
		return d, fmt.Errorf("flowsync: %d bytes: %w", len(b), ErrMalformed)
	}
	if string(b[:len(Magic)]) != Magic {
		return d, fmt.Errorf("flowsync: bad magic or version: %w", ErrMalformed)
	}
	flags := b[len(Magic)]
	if flags&^flagMAC != 0 {
		return d, fmt.Errorf("flowsync: unknown flags %#x: %w", flags, ErrMalformed)
	}
	body := b
	if flags&flagMAC != 0 {
		body = b[:max(len(b)-macLen, 0)]
	}
	if len(body) < fixedLen+1+1+1 {
		return d, fmt.Errorf("flowsync: %d bytes: %w", len(b), ErrMalformed)
	}
	switch {
	case key != nil && flags&flagMAC == 0:
		return d, fmt.Errorf("flowsync: unauthenticated datagram: %w", ErrAuth)
	case key != nil && !hmac.Equal(mac(key, body), b[len(body):]):
		return d, fmt.Errorf("flowsync: bad MAC: %w", ErrAuth)
	}
	p := body[len(Magic)+1:]
	d.Seq = binary.BigEndian.Uint64(p)
	d.Time = time.Unix(0, int64(binary.BigEndian.Uint64(p[8:])))
	p = p[16:]
	n := int(p[0])
	if n == 0 || n > MaxNode || len(p) < 1+n+1 {
		return Datagram{}, fmt.Errorf("flowsync: node name: %w", ErrMalformed)
	}
	d.Node = string(p[1 : 1+n])
	k := int(p[1+n])
	p = p[2+n:]
	if k == 0 {
		return Datagram{}, fmt.Errorf("flowsync: no entries: %w", ErrMalformed)
	}
	d.Entries = make([]Entry, 0, k)
	for i := 0; i < k; i++ {
		e, rest, err := parseEntry(p)
		if err != nil {
			return Datagram{}, fmt.Errorf("flowsync: %q entry %d: %v: %w", d.Node, i, err, ErrMalformed)
		}
		d.Entries = append(d.Entries, e)
		p = rest
	}
	if len(p) != 0 {
		return Datagram{}, fmt.Errorf("flowsync: %q: %d trailing bytes: %w", d.Node, len(p), ErrMalformed)
	}
	d.Authenticated = key != nil
	return d, nil
}

var errShort = errors.New("truncated")

func parseEntry(p []byte) (Entry, []byte, error) {
	var e Entry
	if len(p) < 1 {
		return e, nil, errShort
	}
	e.Kind = Kind(p[0])
	p = p[1:]
	var ok bool
	var a, v netip.Addr
	var port uint16
	switch e.Kind {
	case KindFlow:
		if len(p) < 1 {
			return e, nil, errShort
		}
		e.Proto = p[0]
		p = p[1:]
		if a, p, ok = parseAddr(p); !ok {
			return e, nil, errors.New("client address")
		}
		if port, p, ok = parsePort(p); !ok {
			return e, nil, errShort
		}
		e.Client = netip.AddrPortFrom(a, port)
		if v, p, ok = parseAddr(p); !ok {
			return e, nil, errors.New("VIP address")
		}
		if port, p, ok = parsePort(p); !ok {
			return e, nil, errShort
		}
		e.VIP = netip.AddrPortFrom(v, port)
		if e.Backend, p, ok = parseAddr(p); !ok {
			return e, nil, errors.New("backend address")
		}
	case KindPersist:
		if v, p, ok = parseAddr(p); !ok {
			return e, nil, errors.New("VIP address")
		}
		e.VIP = netip.AddrPortFrom(v, 0)
		if len(p) < 8 {
			return e, nil, errShort
		}
		e.Group = binary.BigEndian.Uint64(p)
		p = p[8:]
		if a, p, ok = parseAddr(p); !ok {
			return e, nil, errors.New("client address")
		}
		e.Client = netip.AddrPortFrom(a, 0)
		if e.Backend, p, ok = parseAddr(p); !ok {
			return e, nil, errors.New("backend address")
		}
	}
	if err := e.check(); err != nil {
		return e, nil, err
	}
	return e, p, nil
}

func parseAddr(p []byte) (netip.Addr, []byte, bool) {
	if len(p) < 1 {
		return netip.Addr{}, nil, false
	}
	switch n := int(p[0]); {
	case n == 4 && len(p) >= 5:
		return netip.AddrFrom4([4]byte(p[1:5])), p[5:], true
	case n == 16 && len(p) >= 17:
		return netip.AddrFrom16([16]byte(p[1:17])), p[17:], true
	}
	return netip.Addr{}, nil, false
}

func parsePort(p []byte) (uint16, []byte, bool) {
	if len(p) < 2 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint16(p), p[2:], true
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}
