//go:build linux

package xdp

import (
	"bytes"
	"testing"
)

// FuzzProgram feeds packets through the program (seeds in
// testdata/fuzz/FuzzProgram: the inputs of TestForward) and checks what the verifier cannot: the
// verdict is one of DROP, PASS, TX, REDIRECT (never ABORTED), a packet
// given to the kernel or dropped is untouched, and a forwarded one only
// changed its MACs or grew by exactly one outer header.
func FuzzProgram(f *testing.F) {
	l := newLab(f, Options{})
	l.standard()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > 4000 {
			t.Skip("PROG_TEST_RUN takes 14 bytes to a page")
		}
		l.t = t
		verdict, out := l.run(in)
		switch verdict {
		case xdpDrop, xdpPass:
			if !bytes.Equal(out, in) {
				t.Fatalf("%s changed the packet:\nin  %x\nout %x", verdictNames[verdict], in, out)
			}
		case xdpTX, xdpRedirect:
			switch len(out) - len(in) {
			case 0:
				if !bytes.Equal(out[12:], in[12:]) {
					t.Fatalf("direct routing changed more than the MACs:\nin  %x\nout %x", in, out)
				}
			case 20, 40:
				if !bytes.Equal(out[14+len(out)-len(in):], in[14:]) {
					t.Fatalf("tunnelling changed the inner packet:\nin  %x\nout %x", in, out)
				}
			default:
				t.Fatalf("%s grew the packet by %d bytes", verdictNames[verdict], len(out)-len(in))
			}
		default:
			t.Fatalf("verdict %d for %x", verdict, in)
		}
	})
}
