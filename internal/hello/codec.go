// Package hello is fulcrum's own heartbeat between the nodes of an HA
// group, beside VRRP: each node announces, once a second, its name, its
// config hash and its VRRP state and priority to the group's peers over
// UDP. VRRP adverts must stay standard (keepalived and routers read them)
// and only a master sends them, so they cannot tell a master which config
// its backups run; hellos can, in both directions, with or without
// authentication.
package hello

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Wire format, version 1 (all integers big-endian):
//
//	offset  size  field
//	0       15    magic "FULCRUM-HELLO 1" (the version is its last byte)
//	15      1     flags: bit 0 set when a MAC follows; other bits zero
//	16      1     VRID
//	17      1     VRRP state: 0 initialize, 1 backup, 2 master, 3 fault
//	18      1     effective priority
//	19      8     sender's clock, Unix nanoseconds
//	27      8     first 8 bytes of the sender's config hash (zero: none)
//	35      1     n, length of the node name (1-255)
//	36      n     node name
//	36+n    1     m, length of the group name (1-255)
//	37+n    m     group name
//	37+n+m  32    flag bit 0 only: HMAC-SHA256 of everything before it
//
// Nothing may follow: a datagram of any other length is rejected.
const (
	Magic    = "FULCRUM-HELLO 1"
	flagMAC  = 1
	fixedLen = len(Magic) + 1 + 1 + 1 + 1 + 8 + HashLen
	macLen   = sha256.Size
	// HashLen is how many bytes of the config hash a hello carries.
	HashLen = 8
	// MaxLen bounds a hello: the fixed part, two names of 255 bytes
	// and a MAC.
	MaxLen = fixedLen + 1 + 255 + 1 + 255 + macLen
)

// States a hello carries, as vrrp.State spells them.
var states = [...]string{"initialize", "backup", "master", "fault"}

// Errors Parse wraps.
var (
	ErrMalformed = errors.New("malformed hello")
	ErrAuth      = errors.New("hello authentication failed")
)

// Message is one hello.
type Message struct {
	Node  string
	Group string
	VRID  uint8
	// State is "initialize", "backup", "master" or "fault".
	State    string
	Priority uint8
	// Time is the sender's clock when it sent the hello.
	Time time.Time
	// ConfigHash is the first 2*HashLen hex digits of the sender's config
	// hash, "" when it has none.
	ConfigHash string
	// Authenticated is set by Parse when a MAC was present and checked.
	Authenticated bool
}

// Key derives the hello key from a group's auth key. The label keeps it
// apart from the VRRP trailer's use of the same secret.
func Key(authKey []byte) []byte {
	h := hmac.New(sha256.New, authKey)
	h.Write([]byte("fulcrum hello v1"))
	return h.Sum(nil)
}

// Append appends m to dst, with a MAC under key (from Key) when key is
// not nil.
func (m *Message) Append(dst []byte, key []byte) ([]byte, error) {
	if len(m.Node) == 0 || len(m.Node) > 255 || len(m.Group) == 0 || len(m.Group) > 255 {
		return dst, fmt.Errorf("hello: node %q or group %q not 1-255 bytes", m.Node, m.Group)
	}
	st := -1
	for i, s := range states {
		if s == m.State {
			st = i
		}
	}
	if st < 0 {
		return dst, fmt.Errorf("hello: unknown state %q", m.State)
	}
	var hash [HashLen]byte
	if m.ConfigHash != "" {
		b, err := hex.DecodeString(m.ConfigHash)
		if err != nil || len(b) < HashLen {
			return dst, fmt.Errorf("hello: config hash %q is not %d hex digits", m.ConfigHash, 2*HashLen)
		}
		copy(hash[:], b)
	}
	start := len(dst)
	dst = append(dst, Magic...)
	var flags byte
	if key != nil {
		flags = flagMAC
	}
	dst = append(dst, flags, m.VRID, byte(st), m.Priority)
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Time.UnixNano()))
	dst = append(dst, hash[:]...)
	dst = append(dst, byte(len(m.Node)))
	dst = append(dst, m.Node...)
	dst = append(dst, byte(len(m.Group)))
	dst = append(dst, m.Group...)
	if key != nil {
		dst = append(dst, mac(key, dst[start:])...)
	}
	return dst, nil
}

// Parse decodes one hello. With a key it requires a valid MAC; without
// one, a MAC is accepted unchecked (the receiver has no means to check it)
// and Authenticated stays false.
func Parse(b []byte, key []byte) (Message, error) {
	var m Message
	if len(b) < fixedLen+2 || len(b) > MaxLen {
		return m, fmt.Errorf("hello: %d bytes: %w", len(b), ErrMalformed)
	}
	if string(b[:len(Magic)]) != Magic {
		return m, fmt.Errorf("hello: bad magic or version: %w", ErrMalformed)
	}
	p := b[len(Magic):]
	flags, vrid, st, prio := p[0], p[1], p[2], p[3]
	if flags&^flagMAC != 0 {
		return m, fmt.Errorf("hello: unknown flags %#x: %w", flags, ErrMalformed)
	}
	if int(st) >= len(states) {
		return m, fmt.Errorf("hello: unknown state %d: %w", st, ErrMalformed)
	}
	ts := int64(binary.BigEndian.Uint64(p[4:12]))
	hash := p[12 : 12+HashLen]
	rest := p[12+HashLen:]
	node, rest, ok := lenPrefixed(rest)
	if !ok {
		return m, fmt.Errorf("hello: node name: %w", ErrMalformed)
	}
	group, rest, ok := lenPrefixed(rest)
	if !ok {
		return m, fmt.Errorf("hello: group name: %w", ErrMalformed)
	}
	want := 0
	if flags&flagMAC != 0 {
		want = macLen
	}
	if len(rest) != want {
		return m, fmt.Errorf("hello: %d trailing bytes, want %d: %w", len(rest), want, ErrMalformed)
	}
	switch {
	case key != nil && want == 0:
		return m, fmt.Errorf("hello: unauthenticated hello from %q: %w", node, ErrAuth)
	case key != nil && !hmac.Equal(mac(key, b[:len(b)-macLen]), rest):
		return m, fmt.Errorf("hello: bad MAC from %q: %w", node, ErrAuth)
	}
	m = Message{
		Node:          string(node),
		Group:         string(group),
		VRID:          vrid,
		State:         states[st],
		Priority:      prio,
		Time:          time.Unix(0, ts),
		Authenticated: key != nil,
	}
	for _, c := range hash {
		if c != 0 {
			m.ConfigHash = hex.EncodeToString(hash)
			break
		}
	}
	return m, nil
}

// lenPrefixed splits off a name of 1-255 bytes after its length byte.
func lenPrefixed(b []byte) (name, rest []byte, ok bool) {
	if len(b) < 1 {
		return nil, nil, false
	}
	n := int(b[0])
	if n == 0 || len(b) < 1+n {
		return nil, nil, false
	}
	return b[1 : 1+n], b[1+n:], true
}

func mac(key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(nil)
}
