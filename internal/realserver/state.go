package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
)

// DefaultStatePath is where Up records its changes unless told
// otherwise, in the network namespace of process 1. In another one (`ip
// netns exec` shares /run with the host) the default is
// /run/fulcrum/realserver-netns-INODE.json, INODE being the namespace's
// (`ls -iL /proc/self/ns/net`), so that real servers set up in several
// namespaces of one machine never share a state file.
const DefaultStatePath = "/run/fulcrum/realserver.json"

func orDefault(path string) string {
	if path != "" {
		return path
	}
	self, err := netnsInode("/proc/thread-self/ns/net")
	if err != nil {
		return DefaultStatePath
	}
	if init, err := netnsInode("/proc/1/ns/net"); err == nil && init == self {
		return DefaultStatePath
	}
	return fmt.Sprintf("/run/fulcrum/realserver-netns-%d.json", self)
}

// Kinds of Change.
const (
	KindSysctl  = "sysctl"  // Path from Old to New
	KindAddress = "address" // Prefix added to Interface
	KindXDP     = "xdp"     // decapsulator ProgramID attached to Interface
	KindLinkUp  = "link_up" // Interface (a kernel tunnel) set up
	// Route's advmss (on Interface) from Old to New ("0": none).
	KindRoute = "route_advmss"
)

// Change is one thing Up changed, as Down undoes it.
type Change struct {
	Kind      string       `json:"kind"`
	Path      string       `json:"path,omitempty"` // sysctl: /proc/sys/...
	Old       string       `json:"old,omitempty"`
	New       string       `json:"new,omitempty"`
	Interface string       `json:"interface,omitempty"`
	IfIndex   int          `json:"ifindex,omitempty"`
	Prefix    netip.Prefix `json:"prefix,omitzero"`
	Route     string       `json:"route,omitempty"` // route_advmss: as ip route names it
	ProgramID uint32       `json:"program_id,omitempty"`
	XDPMode   string       `json:"xdp_mode,omitempty"`
}

func (c Change) String() string {
	switch c.Kind {
	case KindSysctl:
		return fmt.Sprintf("sysctl %s: %s -> %s", sysctlName(c.Path), c.Old, c.New)
	case KindAddress:
		return fmt.Sprintf("address %s added to %s", c.Prefix, c.Interface)
	case KindXDP:
		return fmt.Sprintf("xdp decapsulator (program id %d) attached to %s in %s mode", c.ProgramID, c.Interface, c.XDPMode)
	case KindLinkUp:
		return fmt.Sprintf("link %s set up", c.Interface)
	case KindRoute:
		return fmt.Sprintf("route %s dev %s: advmss %s -> %s", c.Route, c.Interface, c.Old, c.New)
	}
	return c.Kind
}

// State is what Up did, kept in the state file.
type State struct {
	// Netns is the inode of the network namespace the changes were made
	// in; 0 when unknown.
	Netns uint64 `json:"netns,omitempty"`
	// NetnsCookie is that namespace's cookie, which unlike its inode is
	// never given to another namespace; 0 when unknown.
	NetnsCookie uint64       `json:"netns_cookie,omitempty"`
	Mode        string       `json:"mode"`
	Decap       string       `json:"decap,omitempty"` // tunnel: kernel or ebpf
	Interface   string       `json:"interface,omitempty"`
	VIPs        []netip.Addr `json:"vips"`
	Changes     []Change     `json:"changes"`
}

// LoadState reads a state file; a missing file is (nil, nil).
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("realserver: state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("realserver: state %s: %w", path, err)
	}
	if err := checkNetns(&st, path); err != nil {
		return nil, err
	}
	return &st, nil
}

// save writes the state file whole or not at all.
func (st *State) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("realserver: state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("realserver: state: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("realserver: state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("realserver: state: %w", err)
	}
	return nil
}

// find returns the recorded change like c (same kind and subject), if any.
func (st *State) find(c Change) *Change {
	for i := range st.Changes {
		r := &st.Changes[i]
		if r.Kind != c.Kind {
			continue
		}
		switch c.Kind {
		case KindSysctl:
			if r.Path == c.Path {
				return r
			}
		case KindAddress:
			if r.Prefix == c.Prefix && r.Interface == c.Interface {
				return r
			}
		case KindXDP, KindLinkUp:
			if r.Interface == c.Interface {
				return r
			}
		case KindRoute:
			if r.Interface == c.Interface && r.Route == c.Route {
				return r
			}
		}
	}
	return nil
}

// Report is what Check finds.
type Report struct {
	State *State
	// Checks are the conditions of the set-up, each with whether it
	// still holds.
	Checks []CheckResult
	// Decap holds the decapsulator's counters (tunnel mode, ebpf).
	Decap map[string]uint64
}

// CheckResult is one condition.
type CheckResult struct {
	What string
	OK   bool
	Err  error
}

// OK reports whether every condition holds.
func (r *Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}
