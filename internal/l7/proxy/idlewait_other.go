//go:build !unix

package proxy

// setupIdleWait: without a non-blocking peek the connection keeps its
// buffers while idle.
func (c *clientConn) setupIdleWait() {}

// readRaw is never called: without unix there is no poller.
func (t *timedConn) readRaw(uintptr) bool { return true }
