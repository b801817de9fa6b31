package xdplink

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
	}{
		{"", Auto}, {"auto", Auto},
		{"native", Native}, {"driver", Native}, {"drv", Native},
		{"generic", Generic}, {"skb", Generic},
	} {
		got, err := ParseMode(tc.in)
		if got != tc.want || err != nil {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if back, err := ParseMode(got.String()); back != got || err != nil {
			t.Errorf("ParseMode(%s.String()) = %v, %v", got, back, err)
		}
	}
	if _, err := ParseMode("offload"); err == nil || !strings.Contains(err.Error(), `xdp mode "offload": want auto, native or generic`) {
		t.Errorf("ParseMode(offload): %v", err)
	}
	if s := Mode(7).String(); s != "Mode(7)" {
		t.Errorf("Mode(7).String() = %q", s)
	}
}
