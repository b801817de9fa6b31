package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCheckCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check -c FILE",
		Short: "Validate a config file; print every error with file:line (exit 0 valid, 1 invalid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadChecked(file)
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitError(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d services, config hash %.12s)\n", file, len(cfg.Services), cfg.Hash())
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "/etc/fulcrum/fulcrum.yaml", "config file")
	return cmd
}
