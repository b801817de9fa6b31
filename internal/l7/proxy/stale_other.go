//go:build !unix

package proxy

type peeker struct{}

// stale cannot peek at a socket here; a failed reuse shows as a 502.
func (u *upConn) stale() bool { return false }
