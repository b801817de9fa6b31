//go:build unix

package runner

import (
	"os/exec"
	"syscall"
)

// setProcessGroup makes the program the leader of a new process group,
// so that killGroup reaches what it started.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills the program's process group. ESRCH (the group is gone)
// is the common case once the program has exited, and not an error.
func killGroup(cmd *exec.Cmd) {
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
