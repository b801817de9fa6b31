package chromium

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 125, 126, 0xFFFF, 0x10000, 300000} {
		client, server := net.Pipe()
		w := &wsConn{c: client}
		payload := bytes.Repeat([]byte("abcdefg"), n/7+1)[:n]
		go func() {
			_ = w.writeFrame(opText, payload)
			client.Close()
		}()
		f, err := readFrame(bufio.NewReader(server), maxMessage)
		server.Close()
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !f.fin || f.op != opText || !bytes.Equal(f.payload, payload) {
			t.Errorf("%d bytes: got fin=%v op=%d len=%d, want a final text frame with the payload", n, f.fin, f.op, len(f.payload))
		}
	}
}

// serverFrame builds an unmasked frame as a server sends it.
func serverFrame(fin bool, op byte, payload string) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, byte(n))
	case n <= 0xFFFF:
		out = append(out, 126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	return append(out, payload...)
}

func TestReadMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wire    [][]byte
		want    string
		wantErr string
	}{
		{"one frame", [][]byte{serverFrame(true, opText, `{"id":1}`)}, `{"id":1}`, ""},
		{"fragments", [][]byte{serverFrame(false, opText, `{"id"`), serverFrame(false, opContinuation, `:`), serverFrame(true, opContinuation, `2}`)}, `{"id":2}`, ""},
		{"ping inside fragments is answered", [][]byte{serverFrame(false, opText, `a`), serverFrame(true, opPing, `p`), serverFrame(true, opContinuation, `b`)}, `ab`, ""},
		{"close", [][]byte{serverFrame(true, opClose, "")}, "", "closed by peer"},
		{"stray continuation", [][]byte{serverFrame(true, opContinuation, "x")}, "", "continuation frame without a message"},
		{"message inside message", [][]byte{serverFrame(false, opText, "x"), serverFrame(true, opText, "y")}, "", "new message inside"},
		{"long ping", [][]byte{serverFrame(true, opPing, strings.Repeat("x", 126))}, "", "control frame"},
		{"reserved bits", [][]byte{{0xC1, 0}}, "", "reserved bits"},
		{"unknown opcode", [][]byte{serverFrame(true, 0x3, "")}, "", "unknown opcode"},
		{"huge", [][]byte{{0x81, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}}, "", "exceeds"},
		{"truncated", [][]byte{{0x81, 5, 'a'}}, "", "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, server := net.Pipe()
			defer client.Close()
			// Drain what the client answers (pongs, close).
			go func() { _, _ = io.Copy(io.Discard, server) }()
			go func() {
				// net.Pipe writes return once read, so closing after the
				// last write ends a truncated frame with EOF.
				defer server.Close()
				for _, f := range tt.wire {
					if _, err := server.Write(f); err != nil {
						return
					}
				}
			}()
			w := &wsConn{c: client, br: bufio.NewReader(client)}
			got, err := w.readMessage()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestAcceptKey(t *testing.T) {
	t.Parallel()
	// The example from RFC 6455, section 1.3.
	if got, want := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func FuzzReadFrame(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/frames/*")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := readFrame(bytes.NewReader(b), 1<<16)
		if err != nil {
			return
		}
		if len(fr.payload) > 1<<16 {
			t.Fatalf("payload of %d bytes over the limit", len(fr.payload))
		}
		if fr.op&0x8 != 0 && (len(fr.payload) > 125 || !fr.fin) {
			t.Fatalf("accepted a bad control frame: %+v", fr)
		}
	})
}
