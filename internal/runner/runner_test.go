package runner

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slow is how long a run may take on a loaded machine and still count as
// "did not wait for the sleeping child": the children sleep 60 s.
const slow = 15 * time.Second

func run(t *testing.T, c Command) (Result, error) {
	t.Helper()
	return Run(context.Background(), c)
}

func TestRunOutputAndExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		script   string
		wantCode int
		wantOut  string
		wantErr  string // of Result.Err; "" means nil
	}{
		{name: "success", script: "echo out; echo err >&2", wantCode: 0, wantOut: "out\nerr\n"},
		{name: "failure", script: "echo first; echo why it failed >&2; exit 3", wantCode: 3,
			wantOut: "first\nwhy it failed\n", wantErr: "exit status 3: why it failed"},
		{name: "signal", script: "kill -9 $$", wantCode: -1, wantErr: "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := run(t, Command{Argv: []string{"/bin/sh", "-c", tt.script}})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("exit code %d, want %d", res.ExitCode, tt.wantCode)
			}
			if string(res.Output) != tt.wantOut {
				t.Errorf("output %q, want %q", res.Output, tt.wantOut)
			}
			gotErr := ""
			if e := res.Err(); e != nil {
				gotErr = e.Error()
			}
			if gotErr != tt.wantErr {
				t.Errorf("Err() %q, want %q", gotErr, tt.wantErr)
			}
		})
	}
}

func TestRunNotStarted(t *testing.T) {
	t.Parallel()
	res, err := run(t, Command{Argv: []string{"/nonexistent/program"}})
	if err == nil || res.ExitCode != -1 {
		t.Fatalf("got exit %d, err %v; want -1 and an error", res.ExitCode, err)
	}
	if _, err := run(t, Command{}); err == nil {
		t.Fatal("empty argv: got no error")
	}
}

func TestRunEnvironmentIsOnlyWhatIsGiven(t *testing.T) {
	t.Setenv("FULCRUM_RUNNER_SECRET", "leak")
	res, err := run(t, Command{Argv: []string{"/usr/bin/env"}, Env: []string{"FULCRUM_GROUP=web"}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(string(res.Output))
	want := []string{"FULCRUM_GROUP=web", "PATH=" + os.Getenv("PATH")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("environment %q, want %q", got, want)
	}
	res, err = run(t, Command{Argv: []string{"/usr/bin/env"}, Env: []string{"PATH=/bin"}})
	if err != nil || strings.TrimSpace(string(res.Output)) != "PATH=/bin" {
		t.Errorf("with PATH given: %q, %v; want only PATH=/bin", res.Output, err)
	}
}

func TestRunStdin(t *testing.T) {
	t.Parallel()
	res, err := run(t, Command{Argv: []string{"/bin/cat"}, Stdin: []byte("event body\n")})
	if err != nil || string(res.Output) != "event body\n" {
		t.Fatalf("cat: %q, %v", res.Output, err)
	}
	// A program that never reads a large input must not hold the run.
	big := bytes.Repeat([]byte("x"), 1<<20)
	res, err = run(t, Command{Argv: []string{"/bin/true"}, Stdin: big, Timeout: slow})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("true with 1 MiB input: exit %d, %v", res.ExitCode, err)
	}
	// Without Stdin the program reads an empty input, not the daemon's.
	res, err = run(t, Command{Argv: []string{"/bin/cat"}, Timeout: slow})
	if err != nil || len(res.Output) != 0 {
		t.Fatalf("cat without input: %q, %v", res.Output, err)
	}
}

func TestRunOutputLimit(t *testing.T) {
	t.Parallel()
	res, err := run(t, Command{
		Argv:        []string{"/bin/sh", "-c", "head -c 3000000 /dev/zero; echo done >&2"},
		OutputLimit: 1000,
		Timeout:     slow,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, %v", res.ExitCode, err)
	}
	if len(res.Output) != 1000 || !res.Truncated {
		t.Errorf("kept %d bytes, truncated %v; want 1000, true", len(res.Output), res.Truncated)
	}
}

func TestRunTimeoutKillsTheGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child")
	// The child is backgrounded and holds the output pipe; the script
	// itself sleeps past the timeout.
	script := "sleep 60 & echo $! > " + pidFile + "; echo started; sleep 60"
	start := time.Now()
	res, err := run(t, Command{Argv: []string{"/bin/sh", "-c", script}, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > slow {
		t.Errorf("Run took %v after a 300ms timeout", d)
	}
	if res.ExitCode != -1 || !strings.Contains(string(res.Output), "started") {
		t.Errorf("exit %d, output %q; want -1 and the output so far", res.ExitCode, res.Output)
	}
	waitGone(t, pidFile)
}

// TestRunChildHoldingThePipe is the notify script that starts something
// in the background which keeps stdout open: the run ends when the script
// does, and the next run is not held either.
func TestRunChildHoldingThePipe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 3 {
		pidFile := filepath.Join(dir, "child"+strconv.Itoa(i))
		script := "sleep 60 & echo $! > " + pidFile + "; echo notified"
		start := time.Now()
		res, err := run(t, Command{Argv: []string{"/bin/sh", "-c", script}, Timeout: 30 * time.Second})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("run %d: exit %d, %v", i, res.ExitCode, err)
		}
		if d := time.Since(start); d > slow {
			t.Fatalf("run %d took %v: it waited for the child holding the pipe", i, d)
		}
		if string(res.Output) != "notified\n" {
			t.Errorf("output %q", res.Output)
		}
		// Left running on purpose (KillLeftovers off); clean up.
		if pid := readPid(t, pidFile); pid > 0 {
			p, _ := os.FindProcess(pid)
			p.Kill()
		}
	}
}

func TestRunKillLeftovers(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child")
	script := "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > " + pidFile
	res, err := run(t, Command{Argv: []string{"/bin/sh", "-c", script}, KillLeftovers: true})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("exit %d, %v", res.ExitCode, err)
	}
	waitGone(t, pidFile)
}

func TestRunContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := Run(ctx, Command{Argv: []string{"/bin/sleep", "60"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if _, err := Run(ctx, Command{Argv: []string{"/bin/true"}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: err %v, want context.Canceled", err)
	}
}

func TestRunConcurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			want := strconv.Itoa(i)
			res, err := run(t, Command{Argv: []string{"/bin/echo", want}, Timeout: slow})
			if err != nil || strings.TrimSpace(string(res.Output)) != want {
				t.Errorf("run %d: %q, %v", i, res.Output, err)
			}
		})
	}
	wg.Wait()
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the script did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// waitGone waits until the process recorded in file is dead (gone, or a
// zombie waiting for init to reap it).
func waitGone(t *testing.T, file string) {
	t.Helper()
	pid := readPid(t, file)
	deadline := time.Now().Add(slow)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p, _ := os.FindProcess(pid)
	p.Kill()
	t.Fatalf("process %d still runs: the group was not killed", pid)
}
