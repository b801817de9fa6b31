package vrrp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/replay"
)

// Authenticated adverts, fulcrum to fulcrum only.
//
// VRRPv3 dropped VRRPv2's authentication (RFC 9568 section 9 leaves it to
// the link), so heartbeat's authkeys has no standard equivalent. Ours
// appends a trailer after the addresses of an otherwise ordinary advert:
//
//	offset  size  field
//	0       1     magic/version: 0xF1, or 0xF2 with a config hash
//	1       8     sequence number, big-endian
//	9       8     0xF2 only: the first 8 bytes of the sender's config hash
//	9 or 17 16    HMAC-SHA256, truncated to 128 bits (as RFC 4868 does)
//
// The MAC covers, in order: the source address, the destination address
// (4 bytes each for IPv4, 16 for IPv6; these are the pseudo-header's
// fields, so an advert cannot be replayed from or to another address), the
// advert itself with its checksum, and the trailer up to the MAC. The
// VRRP checksum still covers the advert alone.
//
// The config hash lets a node see that its peers run another config
// (`fulcrum status` warns). It travels only here, among key holders: plain
// VRRP adverts stay byte-for-byte standard for keepalived and routers.
// Open accepts both versions.
//
// The sequence starts at the sender's wall clock in Unix nanoseconds when
// its Authenticator is made and counts up by one per advert, so it keeps
// increasing across restarts as long as the clock does. A receiver keeps a
// 64-advert replay window per sender address and VRID and rejects a
// sequence it has seen or one older than the window. After the receiver
// itself restarts it has no window, and accepts the first advert it is
// shown from each sender: an attacker who captured an old advert can replay
// it once then, which at worst delays that receiver's election by one
// master-down interval.
//
// Such packets are not VRRP any more as far as other implementations can
// tell: the IP payload is longer than the address count says, so keepalived
// and routers drop them as malformed. A cluster uses authentication on all
// its nodes or on none.
const (
	authMagic     = 0xF1
	authMagicHash = 0xF2
	authMACLen    = 16
	// ConfigHashLen is how many bytes of the config hash a trailer carries.
	ConfigHashLen = 8
	// AuthTrailerLen is the number of bytes authentication adds to an
	// advert without a config hash; AuthTrailerHashLen with one.
	AuthTrailerLen     = 1 + 8 + authMACLen
	AuthTrailerHashLen = AuthTrailerLen + ConfigHashLen
	// MinAuthKeyLen is the shortest key NewAuthenticator accepts: the
	// MAC's own strength, so the key is never the weaker part.
	MinAuthKeyLen = 16
)

// Errors Authenticator.Open wraps, besides ParseAdvert's.
var (
	ErrAuth   = errors.New("authentication failed")
	ErrReplay = errors.New("replayed or out-of-window sequence")
)

// Authenticator seals outgoing adverts and opens incoming ones with a
// shared key. It is safe for concurrent use.
type Authenticator struct {
	key  []byte
	base uint64
	sent atomic.Uint64
	hash atomic.Pointer[[ConfigHashLen]byte] // nil: send 0xF1 trailers

	mu      sync.Mutex
	windows map[replayKey]*replay.Window
}

type replayKey struct {
	src  netip.Addr
	vrid uint8
}

// NewAuthenticator returns an Authenticator for key, which every node of
// the cluster shares; it must be at least MinAuthKeyLen bytes.
func NewAuthenticator(key []byte) (*Authenticator, error) {
	if len(key) < MinAuthKeyLen {
		return nil, fmt.Errorf("vrrp: auth key of %d bytes, want at least %d", len(key), MinAuthKeyLen)
	}
	return &Authenticator{
		key:     append([]byte(nil), key...),
		base:    uint64(time.Now().UnixNano()),
		windows: make(map[replayKey]*replay.Window),
	}, nil
}

// SetConfigHash makes Seal carry the first ConfigHashLen bytes of h (nil:
// none). Safe from any goroutine.
func (a *Authenticator) SetConfigHash(h []byte) {
	if len(h) < ConfigHashLen {
		a.hash.Store(nil)
		return
	}
	var t [ConfigHashLen]byte
	copy(t[:], h)
	a.hash.Store(&t)
}

// Seal appends adv to dst as Marshal does, followed by the authentication
// trailer with the next sequence number (and the config hash, if set).
func (a *Authenticator) Seal(dst []byte, adv Advert, src, dstAddr netip.Addr) ([]byte, error) {
	start := len(dst)
	dst, err := adv.Marshal(dst, src, dstAddr)
	if err != nil {
		return dst, err
	}
	h := a.hash.Load()
	if h == nil {
		dst = append(dst, authMagic)
	} else {
		dst = append(dst, authMagicHash)
	}
	dst = binary.BigEndian.AppendUint64(dst, a.base+a.sent.Add(1))
	if h != nil {
		dst = append(dst, h[:]...)
	}
	return append(dst, a.mac(src, dstAddr, dst[start:])...), nil
}

// Open checks b's trailer and sequence, then parses the advert as
// ParseAdvert does. An advert without a trailer fails with ErrAuth.
func (a *Authenticator) Open(b []byte, src, dst netip.Addr) (Advert, error) {
	adv, _, err := a.OpenHash(b, src, dst)
	return adv, err
}

// OpenHash is Open that also returns the config hash the sender put in
// the trailer; nil when it sent none.
func (a *Authenticator) OpenHash(b []byte, src, dst netip.Addr) (Advert, []byte, error) {
	is4, err := packetFamily(src, dst)
	if err != nil {
		return Advert{}, nil, err
	}
	if len(b) < headerLen {
		return Advert{}, nil, fmt.Errorf("vrrp: %d-byte packet: %w", len(b), ErrLength)
	}
	n := headerLen + int(b[3])*addrLen(is4)
	if len(b) == n {
		return Advert{}, nil, fmt.Errorf("vrrp: unauthenticated advert from %v: %w", src, ErrAuth)
	}
	if len(b) < n+AuthTrailerLen {
		return Advert{}, nil, fmt.Errorf("vrrp: %d bytes for %d addresses and a trailer: %w", len(b), b[3], ErrLength)
	}
	t := b[n:]
	want := AuthTrailerLen
	switch t[0] {
	case authMagic:
	case authMagicHash:
		want = AuthTrailerHashLen
	default:
		return Advert{}, nil, fmt.Errorf("vrrp: trailer version %#x from %v: %w", t[0], src, ErrAuth)
	}
	if len(t) != want {
		return Advert{}, nil, fmt.Errorf("vrrp: %d bytes for %d addresses and a trailer: %w", len(b), b[3], ErrLength)
	}
	macAt := want - authMACLen
	if !hmac.Equal(a.mac(src, dst, b[:n+macAt]), t[macAt:]) {
		return Advert{}, nil, fmt.Errorf("vrrp: bad MAC from %v: %w", src, ErrAuth)
	}
	adv, err := ParseAdvert(b[:n], src, dst)
	if err != nil {
		return Advert{}, nil, err
	}
	seq := binary.BigEndian.Uint64(t[1:9])
	if !a.accept(replayKey{src, adv.VRID}, seq) {
		return Advert{}, nil, fmt.Errorf("vrrp: sequence %d from %v: %w", seq, src, ErrReplay)
	}
	var hash []byte
	if macAt > 9 {
		hash = slices.Clone(t[9:macAt])
	}
	return adv, hash, nil
}

func (a *Authenticator) mac(src, dst netip.Addr, msg []byte) []byte {
	h := hmac.New(sha256.New, a.key)
	h.Write(src.AsSlice())
	h.Write(dst.AsSlice())
	h.Write(msg)
	return h.Sum(nil)[:authMACLen]
}

// accept records seq for k and reports whether it is new. Only called for
// adverts whose MAC checked out, so only key holders create windows.
func (a *Authenticator) accept(k replayKey, seq uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	w := a.windows[k]
	if w == nil {
		w = &replay.Window{}
		a.windows[k] = w
	}
	return w.Accept(seq)
}
