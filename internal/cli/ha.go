package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

func newHACmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ha", Short: "Control the VRRP groups of the running node"}
	var tg target
	release := &cobra.Command{
		Use:   "release GROUP",
		Short: "Hand the group's VIPs over to a peer gracefully (this node stays backup for a while)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tg.run(cmd, func(ctx context.Context, addr, token string) error {
				if err := admin.ReleaseGroup(ctx, addr, token, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "released %s: a peer takes over its VIPs\n", args[0])
				return nil
			})
		},
	}
	reclaim := &cobra.Command{
		Use:   "reclaim GROUP",
		Short: "Undo `ha release`: this node preempts again as configured (with preempt: true it takes the VIPs back)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tg.run(cmd, func(ctx context.Context, addr, token string) error {
				if err := admin.ReclaimGroup(ctx, addr, token, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "reclaimed %s: the release is undone; this node preempts again as configured\n", args[0])
				return nil
			})
		},
	}
	tg.flags(release)
	tg.flags(reclaim)
	cmd.AddCommand(release, reclaim)
	return cmd
}
