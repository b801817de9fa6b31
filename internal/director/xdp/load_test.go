//go:build linux

package xdp

import "testing"

func TestLoadSmoke(t *testing.T) {
	p, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}
