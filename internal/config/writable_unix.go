//go:build unix

package config

import (
	"errors"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// writable reports why this process could not open path to append to it,
// creating it if need be, as the access log is opened: access(2) on the
// file, or on its directory when it does not exist yet. It sees what open
// would (permissions, a read-only mount such as systemd's
// ProtectSystem=strict) without creating anything.
func writable(path string) error {
	err := unix.Access(path, unix.W_OK)
	if errors.Is(err, unix.ENOENT) {
		err = unix.Access(filepath.Dir(path), unix.W_OK|unix.X_OK)
	}
	return err
}
