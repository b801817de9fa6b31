package xdplink

import "fmt"

// Mode is where in the receive path an XDP program runs.
type Mode uint8

const (
	// Auto is native where the driver has it, else generic.
	Auto Mode = iota
	// Native runs the program in the driver (XDP_FLAGS_DRV_MODE).
	Native
	// Generic runs it after the kernel built an skb (XDP_FLAGS_SKB_MODE):
	// every driver has it, at a fraction of the speed.
	Generic
)

func (m Mode) String() string {
	switch m {
	case Auto:
		return "auto"
	case Native:
		return "native"
	case Generic:
		return "generic"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// ParseMode reads auto (or ""), native (driver, drv) or generic (skb).
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return Auto, nil
	case "native", "driver", "drv":
		return Native, nil
	case "generic", "skb":
		return Generic, nil
	}
	return Auto, fmt.Errorf("xdp mode %q: want auto, native or generic", s)
}
