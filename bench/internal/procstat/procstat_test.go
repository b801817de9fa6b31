package procstat

import (
	"os"
	"testing"
	"time"
)

func TestTicksGrowsWithWork(t *testing.T) {
	a, err := Ticks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the count moves (a tick is 10 ms), within 10 s.
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := 0; i < 1e6; i++ {
			x += i
		}
		b, err := Ticks(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if b > a {
			return
		}
	}
	t.Fatalf("CPU time did not grow in 10 s of work (%d ticks, x=%d)", a, x)
}

func TestTicksMissingProcess(t *testing.T) {
	if _, err := Ticks(-1); err == nil {
		t.Fatal("got no error for pid -1")
	}
}
