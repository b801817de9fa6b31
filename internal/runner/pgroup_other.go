//go:build !unix

package runner

import "os/exec"

// setProcessGroup leaves the default where there are no process groups.
func setProcessGroup(*exec.Cmd) {}

// killGroup kills the program only; the pipe grace period bounds the wait
// for children that hold its output.
func killGroup(cmd *exec.Cmd) {
	_ = cmd.Process.Kill()
}
