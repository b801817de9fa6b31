//go:build unix

package alert

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup puts the program in a process group of its own and
// makes cancellation kill the whole group: killing only a shell script
// would leave its children running and holding the output pipe.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
