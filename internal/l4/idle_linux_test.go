package l4

import "testing"

func TestKernelVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		release      string
		major, minor int
		ok           bool
	}{
		{"6.1.0-18-amd64", 6, 1, true},
		{"4.19.0", 4, 19, true},
		{"3.10.0-1160.el7.x86_64", 3, 10, true},
		{"5.15", 5, 15, true},
		{"6.18.44-fc-v657", 6, 18, true},
		{"garbage", 0, 0, false},
		{"x.y", 0, 0, false},
	}
	for _, tt := range tests {
		major, minor, ok := kernelVersion(tt.release)
		if ok != tt.ok || ok && (major != tt.major || minor != tt.minor) {
			t.Errorf("kernelVersion(%q): got %d.%d %v, want %d.%d %v", tt.release, major, minor, ok, tt.major, tt.minor, tt.ok)
		}
	}
}
