//go:build !linux

package realserver

import (
	"fmt"
	"io"
	"runtime"
)

// A real server of a director is set up with Linux's sysctls, netlink and
// XDP; elsewhere there is nothing to do it with.
var errNotLinux = fmt.Errorf("realserver: needs Linux, not %s", runtime.GOOS)

func Up(o Options, w io.Writer) (*State, error) { return nil, errNotLinux }
func Down(path string, w io.Writer) error       { return errNotLinux }
func Check(path string) (*Report, error)        { return nil, errNotLinux }

func checkNetns(st *State, path string) error { return nil }

func netnsInode(path string) (uint64, error) { return 0, errNotLinux }
