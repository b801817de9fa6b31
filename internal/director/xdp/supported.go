//go:build linux

package xdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// Supported returns nil if this kernel can run the forwarder, else an error
// naming everything it lacks (for `fulcrum check` and start-up).
func Supported() error {
	var errs []error
	probe := func(what string, err error) {
		switch {
		case err == nil:
		case errors.Is(err, ebpf.ErrNotSupported):
			errs = append(errs, fmt.Errorf("%s: not supported by this kernel", what))
		default:
			errs = append(errs, fmt.Errorf("%s: %w (BPF needs root or CAP_BPF+CAP_NET_ADMIN)", what, err))
		}
	}
	probe("BPF XDP programs", features.HaveProgramType(ebpf.XDP))
	if len(errs) > 0 {
		// Without the syscall or the program type the rest says nothing new.
		return fmt.Errorf("xdp: %w", errors.Join(errs...))
	}
	probe("LRU hash maps (5.0)", features.HaveMapType(ebpf.LRUHash))
	probe("per-CPU arrays", features.HaveMapType(ebpf.PerCPUArray))
	probe("ring buffer maps (5.8)", features.HaveMapType(ebpf.RingBuf))
	probe("bpf_jiffies64 (5.5)", features.HaveProgramHelper(ebpf.XDP, asm.FnJiffies64))
	probe("bpf_check_mtu (5.12)", features.HaveProgramHelper(ebpf.XDP, asm.FnCheckMtu))
	probe("bpf_xdp_adjust_head", features.HaveProgramHelper(ebpf.XDP, asm.FnXdpAdjustHead))
	probe("bpf_redirect", features.HaveProgramHelper(ebpf.XDP, asm.FnRedirect))
	if len(errs) > 0 {
		return fmt.Errorf("xdp: %w", errors.Join(errs...))
	}
	return nil
}
