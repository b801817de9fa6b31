package director

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"

	"github.com/fulcrum-lb/fulcrum/internal/config"
	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

// node is the node settings New and Apply take from the config.
type node struct {
	interfaces []string
	mode       xdp.AttachMode
	opts       xdp.Options // fixed for the program's life
	set        settings
}

// open loads the program, attaches it and starts the control loop.
func open(n node, res resolver, log *slog.Logger) (*Director, error) {
	n.opts.MaxServices, n.opts.MaxSlots = maxServices, maxSlots
	prog, err := xdp.Load(n.opts)
	if err != nil {
		return nil, fmt.Errorf("director: %w", err)
	}
	n.opts = prog.Options()
	n.set.flowTimeout = n.opts.FlowTimeout
	d := newDirector(prog, res, n.set, log)
	d.prog, d.node = prog, n
	d.node.interfaces = nil
	if err := d.attach(n.interfaces, n.mode); err != nil {
		prog.Close()
		return nil, err
	}
	d.start()
	return d, nil
}

// attach makes the program attached to exactly ifaces in mode. d.mu must
// not be held; only New and Apply call it, one at a time.
func (d *Director) attach(ifaces []string, mode xdp.AttachMode) error {
	if d.prog == nil {
		d.node.interfaces, d.node.mode = slices.Clone(ifaces), mode
		return nil
	}
	var errs []error
	got := d.prog.Attached()
	for name := range got {
		if !slices.Contains(ifaces, name) || mode != d.node.mode {
			if err := d.prog.Detach(name); err != nil {
				errs = append(errs, fmt.Errorf("director: %w", err))
				continue
			}
			delete(got, name)
			d.log.Info("detached", "interface", name)
		}
	}
	for _, name := range ifaces {
		if _, ok := got[name]; ok {
			continue
		}
		m, err := d.prog.Attach(name, mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("director: %w", err))
			continue
		}
		d.log.Info("attached", "interface", name, "mode", m)
	}
	d.node.interfaces, d.node.mode = slices.Clone(ifaces), mode
	return errors.Join(errs...)
}

// apply changes the node settings of a running director. The program's
// sizes and flow timeout are fixed once it is loaded: changing them is
// an error that leaves everything as it was.
func (d *Director) apply(n node) error {
	n.opts.MaxServices, n.opts.MaxSlots = maxServices, maxSlots
	want := n.opts
	if want.FlowTableSize == 0 {
		want.FlowTableSize = d.node.opts.FlowTableSize
	}
	if want.FlowTimeout == 0 {
		want.FlowTimeout = d.node.opts.FlowTimeout
	}
	if want.FlowTableSize != d.node.opts.FlowTableSize || want.FlowTimeout != d.node.opts.FlowTimeout {
		return fmt.Errorf("director: flow_table_size and flow_timeout take effect at restart (running: %d, %s)", d.node.opts.FlowTableSize, d.node.opts.FlowTimeout)
	}
	err := d.attach(n.interfaces, n.mode)
	d.mu.Lock()
	d.tunnelSrc = n.set.tunnelSource
	for s := range d.services {
		if serr := s.sync(); serr != nil {
			err = errors.Join(err, fmt.Errorf("director: service %s: %w", s.spec.Name, serr))
		}
	}
	d.unlock()
	return err
}

// Close stops the control loop, detaches the program from every
// interface and frees it and its maps.
func (d *Director) Close() error {
	d.stop()
	if d.prog == nil {
		return nil
	}
	if err := d.prog.Close(); err != nil {
		return fmt.Errorf("director: %w", err)
	}
	return nil
}

// Program is the loaded forwarder, for the flow sync.
func (d *Director) Program() *xdp.Program { return d.prog }

// Status is what `fulcrum status` shows of the director.
type Status struct {
	// Interfaces the program is attached to, by name, with the mode it
	// runs in there: native or generic.
	Interfaces []Interface
	// FlowEntries is the number of flows that saw a packet within
	// flow_timeout.
	FlowEntries int64
	// Counters are the program's own, by reason (tx, redirect,
	// passed_no_service, ...).
	Counters map[string]uint64
	// Services and Slots are how many the control plane has programmed.
	Services, Slots int
	// Error is set when the kernel's counters could not be read.
	Error string `json:",omitempty"`
}

// Interface is one interface the program is attached to.
type Interface struct {
	Name string
	Mode string
}

// Status reads the director's state.
func (d *Director) Status() Status {
	var st Status
	if d.prog != nil {
		for name, m := range d.prog.Attached() {
			st.Interfaces = append(st.Interfaces, Interface{Name: name, Mode: m.String()})
		}
		sort.Slice(st.Interfaces, func(i, j int) bool { return st.Interfaces[i].Name < st.Interfaces[j].Name })
	}
	var errs []error
	_, total, _, err := d.activeFlows(false)
	errs = append(errs, err)
	st.FlowEntries = total
	c, err := d.fw.Global()
	if err != nil {
		errs = append(errs, fmt.Errorf("director: %w", err))
	}
	st.Counters = c
	d.mu.Lock()
	st.Services = len(d.services)
	st.Slots = d.slotIDs.inUse(0)
	d.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	}
	return st
}

// tunnelSource parses the tunnel_source setting.
func tunnelSource(s string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("director: tunnel_source: %w", err)
	}
	return a.Unmap(), nil
}

// New loads the XDP program sized from cfg, attaches it to cfg's
// interfaces and starts the control loop. Close undoes it.
func New(cfg config.Director, log *slog.Logger) (*Director, error) {
	n, err := nodeFrom(cfg)
	if err != nil {
		return nil, err
	}
	return open(n, hostResolver(), log)
}

// Apply changes the node settings of a running director: the interfaces,
// the XDP mode and the tunnel source. flow_table_size and flow_timeout
// size the loaded program; a change of either is refused (it takes a
// restart) and nothing changes.
func (d *Director) Apply(cfg config.Director) error {
	n, err := nodeFrom(cfg)
	if err != nil {
		return err
	}
	return d.apply(n)
}

func nodeFrom(cfg config.Director) (node, error) {
	n := node{
		interfaces: cfg.Interfaces,
		opts:       xdp.Options{FlowTableSize: cfg.FlowTableSize, FlowTimeout: cfg.FlowTimeout.D()},
	}
	mode, err := xdplink.ParseMode(cfg.XDPMode)
	if err != nil {
		return node{}, fmt.Errorf("director: %w", err)
	}
	n.mode = mode
	ts, err := tunnelSource(cfg.TunnelSource)
	if err != nil {
		return node{}, err
	}
	n.set.tunnelSource = ts
	return n, nil
}
