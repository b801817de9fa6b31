// Package procstat reads the CPU time of a process from /proc, for the
// benchmark programs under bench/.
package procstat

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// UserHZ is the unit of the times in /proc/stat and /proc/PID/stat; Linux
// fixes it at 100 for user space on every architecture we run on.
const UserHZ = 100

// Ticks returns utime+stime of process pid, all its threads, in UserHZ
// ticks.
func Ticks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields start after the last ')'.
	rest := string(b)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	fs := strings.Fields(rest)
	if len(fs) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(fs[11], 10, 64)
	st, _ := strconv.ParseInt(fs[12], 10, 64)
	return ut + st, nil
}
