package vrrp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/fulcrum-lb/fulcrum/internal/replay"
	"github.com/google/go-cmp/cmp"
)

func newAuth(t *testing.T, key []byte) *Authenticator {
	t.Helper()
	a, err := NewAuthenticator(key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		src, dst netip.Addr
		adv      Advert
	}{
		{"v4", l1, GroupIPv4, Advert{51, 150, 100 * time.Millisecond, addrs("192.168.0.105")}},
		{"v6 unicast", v1, v2, Advert{51, 0, time.Second, addrs("2001:db8::1", "2001:db8::2")}},
	} {
		sender, receiver := newAuth(t, testKey), newAuth(t, testKey)
		b, err := sender.Seal(nil, tt.adv, tt.src, tt.dst)
		if err != nil {
			t.Fatalf("%s: Seal: %v", tt.name, err)
		}
		plain, _ := tt.adv.Marshal(nil, tt.src, tt.dst)
		if len(b) != len(plain)+AuthTrailerLen || !bytes.HasPrefix(b, plain) {
			t.Fatalf("%s: sealed advert is not the plain one plus a %d-byte trailer", tt.name, AuthTrailerLen)
		}
		got, err := receiver.Open(b, tt.src, tt.dst)
		if err != nil {
			t.Fatalf("%s: Open: %v", tt.name, err)
		}
		if diff := cmp.Diff(tt.adv, got, addrCmp); diff != "" {
			t.Errorf("%s: (-sealed +opened):\n%s", tt.name, diff)
		}
		// Plain VRRP receivers reject it: the length does not match.
		if _, err := ParseAdvert(b, tt.src, tt.dst); !errors.Is(err, ErrLength) {
			t.Errorf("%s: plain parse of a sealed advert: %v, want ErrLength", tt.name, err)
		}
	}
}

func TestAuthRejects(t *testing.T) {
	t.Parallel()
	adv := Advert{51, 100, 100 * time.Millisecond, addrs("192.168.0.105")}
	n := headerLen + 4 // offset of the trailer
	tests := []struct {
		name string
		// make returns what arrives, and from and to whom.
		make func(t *testing.T, sender *Authenticator) ([]byte, netip.Addr, netip.Addr)
		want error
	}{
		{"forged with another key", func(t *testing.T, _ *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := newAuth(t, []byte("another key, also 32 bytes long!")).Seal(nil, adv, l1, GroupIPv4)
			return b, l1, GroupIPv4
		}, ErrAuth},
		{"plain advert", func(t *testing.T, _ *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := adv.Marshal(nil, l1, GroupIPv4)
			return b, l1, GroupIPv4
		}, ErrAuth},
		{"tampered priority, checksum fixed", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			b[2] = 254
			b[6], b[7] = 0, 0
			binary.BigEndian.PutUint16(b[6:], checksum(b[:n], l1, GroupIPv4))
			return b, l1, GroupIPv4
		}, ErrAuth},
		{"tampered sequence", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			b[n+8]++
			return b, l1, GroupIPv4
		}, ErrAuth},
		{"truncated MAC", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			return b[:len(b)-1], l1, GroupIPv4
		}, ErrLength},
		{"other trailer version", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			b[n] = 0xF3
			return b, l1, GroupIPv4
		}, ErrAuth},
		{"tampered config hash", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			s.SetConfigHash([]byte("0123456789"))
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			b[n+9] ^= 1
			return b, l1, GroupIPv4
		}, ErrAuth},
		{"config hash version without the hash", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			b[n] = 0xF2
			return b, l1, GroupIPv4
		}, ErrLength},
		{"replayed from another source", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, GroupIPv4)
			return b, l2, GroupIPv4
		}, ErrAuth},
		{"replayed to another destination", func(t *testing.T, s *Authenticator) ([]byte, netip.Addr, netip.Addr) {
			b, _ := s.Seal(nil, adv, l1, l2)
			return b, l1, GroupIPv4
		}, ErrAuth},
	}
	for _, tt := range tests {
		sender, receiver := newAuth(t, testKey), newAuth(t, testKey)
		b, src, dst := tt.make(t, sender)
		if _, err := receiver.Open(b, src, dst); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestAuthReplay(t *testing.T) {
	t.Parallel()
	adv := Advert{51, 100, 100 * time.Millisecond, addrs("192.168.0.105")}
	sender, receiver := newAuth(t, testKey), newAuth(t, testKey)
	var sealed [][]byte
	for range replay.Size + 10 {
		b, err := sender.Seal(nil, adv, l1, GroupIPv4)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, b)
	}
	open := func(i int) error {
		_, err := receiver.Open(sealed[i], l1, GroupIPv4)
		return err
	}
	if err := open(5); err != nil {
		t.Fatalf("first advert: %v", err)
	}
	if err := open(5); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed advert: %v, want ErrReplay", err)
	}
	// Reordered within the window: accepted once each.
	for _, i := range []int{7, 6} {
		if err := open(i); err != nil {
			t.Errorf("advert %d after 7: %v", i, err)
		}
	}
	if err := open(6); !errors.Is(err, ErrReplay) {
		t.Errorf("advert 6 again: %v, want ErrReplay", err)
	}
	if err := open(len(sealed) - 1); err != nil {
		t.Fatalf("latest advert: %v", err)
	}
	// 4 is now more than the window behind the latest.
	if err := open(4); !errors.Is(err, ErrReplay) {
		t.Errorf("advert older than the window: %v, want ErrReplay", err)
	}
	if err := open(len(sealed) - 2); err != nil {
		t.Errorf("advert just behind the latest: %v", err)
	}

	// A restarted sender starts from its clock, above everything it sent.
	time.Sleep(time.Microsecond)
	restarted := newAuth(t, testKey)
	b, _ := restarted.Seal(nil, adv, l1, GroupIPv4)
	if _, err := receiver.Open(b, l1, GroupIPv4); err != nil {
		t.Errorf("advert from the restarted sender: %v", err)
	}

	// Each VRID of a sender has its own window: another instance on the
	// same host, with its own counter, is not taken for a replay.
	other := adv
	other.VRID = 52
	b, _ = newAuth(t, testKey).Seal(nil, other, l1, GroupIPv4)
	if _, err := receiver.Open(b, l1, GroupIPv4); err != nil {
		t.Errorf("another VRID from the same sender: %v", err)
	}
	b, _ = sender.Seal(nil, adv, l1, GroupIPv4)
	if _, err := receiver.Open(b, l1, GroupIPv4); !errors.Is(err, ErrReplay) {
		t.Errorf("the pre-restart sender's next advert: %v, want ErrReplay (its clock is behind)", err)
	}
}

func TestNewAuthenticatorKeyLength(t *testing.T) {
	t.Parallel()
	if _, err := NewAuthenticator(make([]byte, MinAuthKeyLen-1)); err == nil {
		t.Error("accepted a short key")
	}
	key := bytes.Repeat([]byte{1}, MinAuthKeyLen)
	a := newAuth(t, key)
	key[0] = 2 // the Authenticator keeps its own copy
	b, _ := a.Seal(nil, Advert{1, 1, time.Second, addrs("10.0.0.1")}, l1, GroupIPv4)
	if _, err := newAuth(t, bytes.Repeat([]byte{1}, MinAuthKeyLen)).Open(b, l1, GroupIPv4); err != nil {
		t.Errorf("key changed under the Authenticator: %v", err)
	}
}

func TestAuthConfigHash(t *testing.T) {
	t.Parallel()
	adv := Advert{51, 100, 100 * time.Millisecond, addrs("192.168.0.105")}
	sender, receiver := newAuth(t, testKey), newAuth(t, testKey)
	b, err := sender.Seal(nil, adv, l1, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if _, h, err := receiver.OpenHash(b, l1, GroupIPv4); err != nil || h != nil {
		t.Fatalf("without a hash: got %x, %v; want nil, nil", h, err)
	}
	sum := []byte{0xab, 0xcd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	sender.SetConfigHash(sum)
	b, err = sender.Seal(nil, adv, l1, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := adv.Marshal(nil, l1, GroupIPv4)
	if len(b) != len(plain)+AuthTrailerHashLen {
		t.Fatalf("sealed with a hash: %d bytes, want %d", len(b), len(plain)+AuthTrailerHashLen)
	}
	got, h, err := receiver.OpenHash(b, l1, GroupIPv4)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h, sum[:ConfigHashLen]) || got.Priority != 100 {
		t.Errorf("got hash %x priority %d, want %x and 100", h, got.Priority, sum[:ConfigHashLen])
	}
	sender.SetConfigHash(nil)
	b, _ = sender.Seal(nil, adv, l1, GroupIPv4)
	if len(b) != len(plain)+AuthTrailerLen {
		t.Errorf("hash cleared: %d bytes, want the plain trailer", len(b))
	}
}
