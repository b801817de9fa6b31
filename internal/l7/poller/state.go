package poller

// Waiter states.
const (
	waiterRunning int32 = iota // its goroutine is not waiting
	waiterParked               // its goroutine waits on wake
	waiterReady                // notified while running: read again before waiting
)
