//go:build linux

package xdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf/ringbuf"
)

// NewFlow is a flow the program created: the client's first packet (or the
// first after the flow had been idle FlowTimeout or its slot died).
type NewFlow struct {
	Flow      Flow
	Slot      uint32
	Service   uint32 // the service's ID
	Persisted bool   // chosen by persistence rather than the ring
}

// ReadNewFlows calls fn for each flow creation, in the order the kernel
// recorded them, until ctx ends (then it returns ctx.Err()). One reader at
// a time. Events the buffer had no room for are lost and counted
// (Global()["events_lost"]); their packets were forwarded all the same.
func (p *Program) ReadNewFlows(ctx context.Context, fn func(NewFlow)) error {
	rd, err := ringbuf.NewReader(p.objs.Events)
	if err != nil {
		return fmt.Errorf("xdp: new flows: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer func() {
		stop()
		rd.Close()
	}()
	var rec ringbuf.Record
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("xdp: new flows: %w", err)
		}
		ev, err := decodeEvent(rec.RawSample)
		if err != nil {
			return fmt.Errorf("xdp: new flows: %w", err)
		}
		fn(NewFlow{Flow: keyFlow(ev.Flow), Slot: ev.Slot, Service: ev.Svc, Persisted: ev.Persisted != 0})
	}
}

// decodeEvent reads a struct event (bpf/xdp.h) field by field: the reader
// may see tens of thousands a second, and encoding/binary's reflection
// would cost more than the rest of the work.
func decodeEvent(b []byte) (bpfEvent, error) {
	var ev bpfEvent
	if len(b) < 49 {
		return ev, fmt.Errorf("record of %d bytes, want at least the 49 its fields take (a struct event is 56 with padding)", len(b))
	}
	e := binary.NativeEndian
	for i := range 4 {
		ev.Flow.Src[i] = e.Uint32(b[4*i:])
		ev.Flow.Dst[i] = e.Uint32(b[16+4*i:])
	}
	ev.Flow.Sport = e.Uint16(b[32:])
	ev.Flow.Dport = e.Uint16(b[34:])
	ev.Flow.Proto = b[36]
	ev.Flow.Family = b[37]
	ev.Slot = e.Uint32(b[40:])
	ev.Svc = e.Uint32(b[44:])
	ev.Persisted = b[48]
	return ev, nil
}
