package cli

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// TestDemoNamesTheFlagOfABusyAddress: the demo refuses addresses in use
// and names the flag that picks another, for each of them at once.
func TestDemoNamesTheFlagOfABusyAddress(t *testing.T) {
	t.Parallel()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	busyTCP, busyUDP := tcp.Addr().String(), udp.LocalAddr().String()

	var stdout, stderr bytes.Buffer
	code := Main([]string{"demo", "--web", busyTCP, "--udp", busyUDP, "--admin", busyTCP}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr.String())
	}
	got := stderr.String()
	for _, want := range []string{"--web " + busyTCP, "--udp " + busyUDP, "--admin " + busyTCP, "choose a free address with --web", "choose a free address with --udp", "choose a free address with --admin"} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr %q, want %q in it", got, want)
		}
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout %q: the demo started", stdout.String())
	}

	stderr.Reset()
	// The same free address for --web and --admin: the second one is busy.
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	same := free.Addr().String()
	free.Close()
	if code := Main([]string{"demo", "--web", same, "--udp", busyUDP, "--admin", same}, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr %q", code, stderr.String())
	}
	got = stderr.String()
	for _, want := range []string{"--udp " + busyUDP, "--admin " + same} {
		if !strings.Contains(got, want) {
			t.Errorf("stderr %q, want %q in it", got, want)
		}
	}
}
