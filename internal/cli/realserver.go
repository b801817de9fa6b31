package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/realserver"
	"github.com/fulcrum-lb/fulcrum/internal/xdplink"
)

func newRealserverCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "realserver",
		Short: "Set up this host as a backend of a direct-routing or tunnelling director, and undo it",
		Long: `realserver prepares a backend ("real server") for services with forwarding:
direct or tunnel: the VIPs on lo, the ARP settings that keep the host from
answering for them, and, for tunnelling, decapsulation of the director's
IP-in-IP packets. Every change is printed and recorded; down undoes them.`,
	}
	var state string
	cmd.PersistentFlags().StringVar(&state, "state", "", "file recording the changes up made, for down and status (default "+realserver.DefaultStatePath+"; in a network namespace other than process 1's, realserver-netns-INODE.json there)")

	var mode, iface, decapFlag, xdpMode string
	up := &cobra.Command{
		Use:   "up --mode direct|tunnel VIP...",
		Short: "Put the VIPs on lo, silence ARP for them and, in tunnel mode, decapsulate; idempotent",
		Example: `  fulcrum realserver up --mode direct 192.168.0.105
  fulcrum realserver up --mode tunnel --interface eth0 192.168.0.110 2001:db8::110`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := realserver.Options{Interface: iface, StatePath: state}
			var errs []error
			var err error
			if o.Mode, err = realserver.ParseMode(mode); err != nil {
				errs = append(errs, fmt.Errorf("--mode: %w", err))
			}
			if o.Decap, err = realserver.ParseDecap(decapFlag); err != nil {
				errs = append(errs, fmt.Errorf("--decap: %w", err))
			}
			if o.XDPMode, err = xdplink.ParseMode(xdpMode); err != nil {
				errs = append(errs, fmt.Errorf("--xdp-mode: %w", err))
			}
			for _, a := range args {
				v, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimSuffix(a, "/32"), "/128"))
				if err != nil || v.Zone() != "" {
					errs = append(errs, fmt.Errorf("VIP %q: not an IP address", a))
					continue
				}
				o.VIPs = append(o.VIPs, v.Unmap())
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			_, err = realserver.Up(o, cmd.OutOrStdout())
			return err
		},
	}
	up.Flags().StringVar(&mode, "mode", "", "the director's forwarding: direct (gate, dr) or tunnel (ipip, tun)")
	up.Flags().StringVarP(&iface, "interface", "i", "", "interface facing the director, where tunnelled packets arrive (default: the default route's)")
	up.Flags().StringVar(&decapFlag, "decap", "auto", "tunnel mode: kernel (tunl0; needs the ipip module), ebpf (fulcrum's XDP program) or auto (kernel if it has ipip, else ebpf)")
	up.Flags().StringVar(&xdpMode, "xdp-mode", "auto", "how the XDP decapsulator attaches: auto (native, else generic), native or generic")
	up.MarkFlagRequired("mode")

	down := &cobra.Command{
		Use:   "down",
		Short: "Undo what up changed: restore the sysctls, remove the VIPs it added, detach the decapsulator",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return realserver.Down(state, cmd.OutOrStdout())
		},
	}

	status := &cobra.Command{
		Use:   "status",
		Short: "Show what up changed and check it still holds (exit status 1 if not)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := realserver.Check(state)
			if err != nil {
				return err
			}
			printRealserver(cmd, r)
			if !r.OK() {
				return exitError(1)
			}
			return nil
		},
	}
	cmd.AddCommand(up, down, status)
	return cmd
}

func printRealserver(cmd *cobra.Command, r *realserver.Report) {
	w := cmd.OutOrStdout()
	st := r.State
	vips := make([]string, len(st.VIPs))
	for i, v := range st.VIPs {
		vips[i] = v.String()
	}
	fmt.Fprintf(w, "mode %s", st.Mode)
	if st.Decap != "" {
		fmt.Fprintf(w, ", decap %s", st.Decap)
	}
	if st.Interface != "" {
		fmt.Fprintf(w, ", interface %s", st.Interface)
	}
	fmt.Fprintf(w, ", VIPs %s\n", strings.Join(vips, " "))
	fmt.Fprintln(w, "changes (down undoes them):")
	for _, c := range st.Changes {
		fmt.Fprintf(w, "  %s\n", c)
	}
	fmt.Fprintln(w, "checks:")
	for _, c := range r.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s", mark, c.What)
		if c.Err != nil {
			fmt.Fprintf(w, ": %v", c.Err)
		}
		fmt.Fprintln(w)
	}
	if !r.OK() {
		fmt.Fprintln(w, "run `fulcrum realserver up` again to restore what no longer holds")
	}
	if len(r.Decap) > 0 {
		keys := make([]string, 0, len(r.Decap))
		for k := range r.Decap {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprint(w, "decapsulator counters:")
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%d", k, r.Decap[k])
		}
		fmt.Fprintln(w)
	}
}
