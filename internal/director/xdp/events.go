//go:build linux

package xdp

import (
	"bytes"
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
	var ev bpfEvent
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) && ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("xdp: new flows: %w", err)
		}
		if err := binary.Read(bytes.NewReader(rec.RawSample), binary.NativeEndian, &ev); err != nil {
			return fmt.Errorf("xdp: new flows: record of %d bytes: %w", len(rec.RawSample), err)
		}
		fn(NewFlow{Flow: keyFlow(ev.Flow), Slot: ev.Slot, Service: ev.Svc, Persisted: ev.Persisted != 0})
	}
}
