//go:build !unix

package proxy

// stale cannot peek at a socket here; a failed reuse shows as a 502.
func (u *upConn) stale() bool { return false }
