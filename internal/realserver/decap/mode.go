package decap

import "fmt"

// Mode is how the program is attached.
type Mode uint8

const (
	ModeAuto    Mode = iota // native if the driver has it, else generic
	ModeNative              // in the driver (XDP_FLAGS_DRV_MODE)
	ModeGeneric             // in the kernel's receive path (XDP_FLAGS_SKB_MODE)
)

func (m Mode) String() string {
	switch m {
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return "auto"
}

// ParseMode reads "auto", "native" or "generic".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto", "":
		return ModeAuto, nil
	case "native", "driver", "drv":
		return ModeNative, nil
	case "generic", "skb":
		return ModeGeneric, nil
	}
	return ModeAuto, fmt.Errorf("xdp mode %q: want auto, native or generic", s)
}
