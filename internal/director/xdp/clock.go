//go:build linux

package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// The program stamps flows and persistence entries with jiffies scaled to
// nanoseconds plus an offset measured here (bpf/xdp.c, clock_now): the
// verifier inlines bpf_jiffies64 to a load, where a clock helper is a call
// that cost ~15% of the established-flow path. The result follows
// CLOCK_MONOTONIC_COARSE (which advances once a tick, as jiffies do) to
// within a tick, so the Go side reads that clock: monotonic.

// monotonic is the program's clock as Go reads it (to within a tick).
func monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC_COARSE, &ts)
	return uint64(ts.Nano())
}

// calibrateClock returns the tick's length (the coarse clock's resolution,
// 1/HZ) and the offset that turns jiffies*tick into CLOCK_MONOTONIC_COARSE
// (two's complement: it may be negative), by reading jiffies in a probe
// program between two reads of the coarse clock.
func calibrateClock() (tick, offset uint64, err error) {
	var res unix.Timespec
	if err := unix.ClockGetres(unix.CLOCK_MONOTONIC_COARSE, &res); err != nil {
		return 0, 0, fmt.Errorf("resolution of CLOCK_MONOTONIC_COARSE: %w", err)
	}
	tick = uint64(res.Nano())
	if tick == 0 {
		return 0, 0, errors.New("CLOCK_MONOTONIC_COARSE has no resolution")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.XDP,
		License: "GPL",
		Instructions: asm.Instructions{
			// Store bpf_jiffies64() in the first 8 bytes of the packet.
			asm.Mov.Reg(asm.R6, asm.R1),
			asm.FnJiffies64.Call(),
			asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
			asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, 8),
			asm.JGT.Reg(asm.R4, asm.R3, "out"),
			asm.StoreMem(asm.R2, 0, asm.R0, asm.DWord),
			asm.Mov.Imm(asm.R0, int32(2)).WithSymbol("out"), // XDP_PASS
			asm.Return(),
		},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("jiffies probe: %w", err)
	}
	defer prog.Close()
	// Both clocks advance in the same tick: a run with no tick between the
	// two reads gives the offset to within the tick's jitter. A few tries
	// find one; else the last is off by at most a tick.
	in := make([]byte, 64) // XDP test runs want at least an Ethernet header
	out := make([]byte, len(in))
	for range 10 {
		t0 := monotonic()
		if _, err := prog.Run(&ebpf.RunOptions{Data: in, DataOut: out}); err != nil {
			return 0, 0, fmt.Errorf("jiffies probe: %w", err)
		}
		t1 := monotonic()
		offset = t1 - binary.NativeEndian.Uint64(out)*tick
		if t0 == t1 {
			break
		}
	}
	return tick, offset, nil
}
