package hello

import (
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"slices"
	"time"
)

// Admin-state datagrams share the hello port: each node sends, with its
// hellos, the runtime admin states (drain, maint, ready) set on it or
// taken from a peer since its last reload, so that a drain on one node
// reaches the others (they share the config; they share a drain too).
//
// Wire format, version 1 (integers big-endian; "name" is a length byte
// and 1-255 bytes):
//
//	offset  size  field
//	0       15    magic "FULCRUM-ADMIN 1"
//	15      1     flags: bit 0 set when a MAC follows
//	16      8     sender's clock, Unix nanoseconds
//	24      name  node
//	        name  group (whose auth key seals it, and whose peers hear it)
//	        1     n, entries (0-MaxAdminEntries)
//	        n ×   state (1 byte: 0 ready, 1 drain, 2 maint), time set
//	              (8 bytes, the origin's clock), origin node (name),
//	              service (name), backend ip:port (name)
//	        32    flag bit 0 only: HMAC-SHA256 of everything before it
const (
	AdminMagic = "FULCRUM-ADMIN 1"
	// MaxAdminEntries bounds a datagram: 64 entries of the longest names
	// fit in 64 KiB; of usual names (a 20-byte service, an IPv4 backend)
	// in a 1500-byte frame about 20 do.
	MaxAdminEntries = 64
)

// adminStates are the admin states an entry carries, as balancer and the
// API spell them.
var adminStates = [...]string{"ready", "drain", "maint"}

// AdminEntry is one backend's runtime admin state.
type AdminEntry struct {
	Service, Backend string
	State            string // "ready", "drain" or "maint"
	// Time is when it was set, on Origin's clock: the newest wins.
	Time   time.Time
	Origin string // the node it was set on
}

// AdminTable is one node's runtime admin states.
type AdminTable struct {
	Node, Group string
	Time        time.Time // when it was sent
	Entries     []AdminEntry
}

// AppendAdmin appends t to dst, sealed under key (from Key) when key is
// not nil.
func (t *AdminTable) Append(dst, key []byte) ([]byte, error) {
	if len(t.Entries) > MaxAdminEntries {
		return dst, fmt.Errorf("hello: %d admin entries, at most %d", len(t.Entries), MaxAdminEntries)
	}
	start := len(dst)
	dst = append(dst, AdminMagic...)
	var flags byte
	if key != nil {
		flags = flagMAC
	}
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.Time.UnixNano()))
	var err error
	if dst, err = appendName(dst, t.Node); err != nil {
		return dst, err
	}
	if dst, err = appendName(dst, t.Group); err != nil {
		return dst, err
	}
	dst = append(dst, byte(len(t.Entries)))
	for _, e := range t.Entries {
		st := slices.Index(adminStates[:], e.State)
		if st < 0 {
			return dst, fmt.Errorf("hello: unknown admin state %q", e.State)
		}
		dst = append(dst, byte(st))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.Time.UnixNano()))
		for _, s := range []string{e.Origin, e.Service, e.Backend} {
			if dst, err = appendName(dst, s); err != nil {
				return dst, err
			}
		}
	}
	if key != nil {
		dst = append(dst, mac(key, dst[start:])...)
	}
	return dst, nil
}

func appendName(dst []byte, s string) ([]byte, error) {
	if len(s) == 0 || len(s) > 255 {
		return dst, fmt.Errorf("hello: name %q not 1-255 bytes", s)
	}
	return append(append(dst, byte(len(s))), s...), nil
}

// IsAdmin reports whether b is an admin-state datagram (by its magic).
func IsAdmin(b []byte) bool {
	return len(b) >= len(AdminMagic) && string(b[:len(AdminMagic)]) == AdminMagic
}

// ParseAdmin decodes one admin-state datagram. keyFor returns the key of
// the named group (nil: none); with a key the MAC is required and
// checked, without one a MAC is refused, since an unchecked admin state
// must not pass for an authenticated one.
func ParseAdmin(b []byte, keyFor func(group string) []byte) (AdminTable, error) {
	var t AdminTable
	if !IsAdmin(b) || len(b) < len(AdminMagic)+1+8 {
		return t, fmt.Errorf("hello: admin: %d bytes or bad magic: %w", len(b), ErrMalformed)
	}
	p := b[len(AdminMagic):]
	flags := p[0]
	if flags&^flagMAC != 0 {
		return t, fmt.Errorf("hello: admin: unknown flags %#x: %w", flags, ErrMalformed)
	}
	t.Time = time.Unix(0, int64(binary.BigEndian.Uint64(p[1:9])))
	rest := p[9:]
	var node, group []byte
	var ok bool
	if node, rest, ok = lenPrefixed(rest); !ok {
		return t, fmt.Errorf("hello: admin: node name: %w", ErrMalformed)
	}
	if group, rest, ok = lenPrefixed(rest); !ok {
		return t, fmt.Errorf("hello: admin: group name: %w", ErrMalformed)
	}
	t.Node, t.Group = string(node), string(group)
	if len(rest) < 1 || int(rest[0]) > MaxAdminEntries {
		return t, fmt.Errorf("hello: admin: entry count: %w", ErrMalformed)
	}
	n := int(rest[0])
	rest = rest[1:]
	for range n {
		if len(rest) < 9 || int(rest[0]) >= len(adminStates) {
			return t, fmt.Errorf("hello: admin: entry: %w", ErrMalformed)
		}
		e := AdminEntry{State: adminStates[rest[0]], Time: time.Unix(0, int64(binary.BigEndian.Uint64(rest[1:9])))}
		rest = rest[9:]
		var f [3][]byte
		for i := range f {
			if f[i], rest, ok = lenPrefixed(rest); !ok {
				return t, fmt.Errorf("hello: admin: entry names: %w", ErrMalformed)
			}
		}
		e.Origin, e.Service, e.Backend = string(f[0]), string(f[1]), string(f[2])
		t.Entries = append(t.Entries, e)
	}
	want := 0
	if flags&flagMAC != 0 {
		want = macLen
	}
	if len(rest) != want {
		return t, fmt.Errorf("hello: admin: %d trailing bytes, want %d: %w", len(rest), want, ErrMalformed)
	}
	key := keyFor(t.Group)
	switch {
	case key == nil && want != 0:
		return t, fmt.Errorf("hello: admin: sealed, but group %q has no key here: %w", t.Group, ErrAuth)
	case key != nil && want == 0:
		return t, fmt.Errorf("hello: admin: unauthenticated from %q: %w", t.Node, ErrAuth)
	case key != nil && !hmac.Equal(mac(key, b[:len(b)-macLen]), rest):
		return t, fmt.Errorf("hello: admin: bad MAC from %q: %w", t.Node, ErrAuth)
	}
	return t, nil
}
