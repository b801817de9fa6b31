//go:build !unix

package alert

import "os/exec"

// setProcessGroup leaves the default: cancellation kills the program
// only, and waitDelay bounds waiting for children holding its output.
func setProcessGroup(*exec.Cmd) {}
