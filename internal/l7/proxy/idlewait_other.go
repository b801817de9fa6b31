//go:build !unix

package proxy

// setupIdleWait: without a non-blocking peek the connection keeps its
// buffers while idle.
func (c *clientConn) setupIdleWait() {}
