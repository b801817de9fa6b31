package cli

import (
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/director/xdp"
	"github.com/fulcrum-lb/fulcrum/internal/ha"
)

// xdpSupported is xdp.Supported; tests replace it.
var xdpSupported = xdp.Supported

func newCheckCmd() *cobra.Command {
	var (
		file      string
		effective bool
	)
	cmd := &cobra.Command{
		Use:   "check -c FILE [--effective]",
		Short: "Validate a config file; print every error with file:line (exit 0 valid, 1 invalid)",
		Long: `check validates a config file the way run would load it, like haproxy -c
or nginx -t: every problem is printed as file:line:column: field: message, and
the exit status is 0 for a valid file and 1 otherwise. It reads every file the
config names (admin token, HA auth keys, TLS certificates, error pages) and
checks them as run and every reload do, so run it as the user fulcrum runs
as (root under the systemd unit). It leaves to run whether the listen
addresses are free. An HA group whose interface this host lacks, or which has
no address of the VIPs' family there, is a warning on stderr (the exit status
stays 0): run would refuse it here, but the file may be meant for another
node or checked on a build machine. A director interface this host lacks is
a warning too. A service with forwarding direct or tunnel needs a kernel
that runs the director's XDP program: check asks the kernel and fails with
what it lacks (run fails the same way; it never falls back to the proxy).

With --effective, a valid file is printed back as YAML with every default
filled in: the configuration fulcrum would actually run. The output is itself
a valid config with the same config hash, so it can be diffed between nodes
or kept as a reference.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadChecked(file)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError(1)
			}
			// What run would also refuse on this host. A warning: the file
			// may be meant for another node, or checked on a build machine.
			for i := range cfg.HA.Groups {
				if err := ha.CheckHost(&cfg.HA.Groups[i]); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: %v: run would refuse this file on this host\n", file, err)
				}
			}
			if cfg.UsesDirector() {
				if err := xdpSupported(); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: forwarding direct or tunnel needs the kernel director, which this host cannot run: %v\n", file, err)
					return exitError(1)
				}
				for _, name := range cfg.Director.Interfaces {
					if _, err := net.InterfaceByName(name); err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: director.interfaces: %s: %v: run would refuse this file on this host\n", file, name, err)
					}
				}
			}
			out := cmd.OutOrStdout()
			if !effective {
				fmt.Fprintf(out, "%s: ok (%d services, config hash %.12s)\n", file, len(cfg.Services), cfg.Hash())
				return nil
			}
			b, err := cfg.Marshal()
			if err != nil {
				return err
			}
			// A comment, so that the output stays a config file.
			fmt.Fprintf(out, "# %s: ok (%d services, config hash %.12s); effective config, defaults filled in\n", file, len(cfg.Services), cfg.Hash())
			_, err = out.Write(b)
			return err
		},
	}
	configFlag(cmd, &file)
	cmd.Flags().BoolVar(&effective, "effective", false, "print the effective config (YAML, every default filled in) instead of only ok")
	return cmd
}
