package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
)

func newBackendCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backend",
		Short: "Change backends of the running node (like ipvsadm -e/-a/-d); a reload restores the file's weights and backends",
	}
	var tg target
	states := []struct{ use, state, short string }{
		{"drain", "drain", "Send a backend no new connections; established ones continue"},
		{"disable", "maint", "Put a backend in maintenance: no new connections, established ones go as from a down backend"},
		{"enable", "ready", "Let a drained or disabled backend take traffic again"},
	}
	for _, s := range states {
		c := &cobra.Command{
			Use:   s.use + " SERVICE ADDRESS",
			Short: s.short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return tg.run(cmd, func(ctx context.Context, addr, token string) error {
					b, err := admin.SetBackendState(ctx, addr, token, args[0], args[1], s.state)
					if err != nil {
						return err
					}
					printBackend(cmd.OutOrStdout(), args[0], b)
					return nil
				})
			},
		}
		tg.flags(c)
		cmd.AddCommand(c)
	}

	weight := &cobra.Command{
		Use:   "weight SERVICE ADDRESS N",
		Short: "Set a backend's weight (0-65535) until the next reload",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := strconv.Atoi(args[2])
			if err != nil || w < 0 || w > 65535 {
				return fmt.Errorf("weight %q: want an integer 0-65535", args[2])
			}
			return tg.run(cmd, func(ctx context.Context, addr, token string) error {
				b, err := admin.SetBackendWeight(ctx, addr, token, args[0], args[1], w)
				if err != nil {
					return err
				}
				printBackend(cmd.OutOrStdout(), args[0], b)
				return nil
			})
		},
	}
	tg.flags(weight)

	var addWeight int
	var addBackup bool
	add := &cobra.Command{
		Use:   "add SERVICE ADDRESS",
		Short: "Add a backend to a service until the next reload; it gets the service's health check",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			nb := admin.NewBackend{Address: args[1], Backup: addBackup}
			if cmd.Flags().Changed("weight") {
				nb.Weight = &addWeight
			}
			return tg.run(cmd, func(ctx context.Context, addr, token string) error {
				b, err := admin.AddBackend(ctx, addr, token, args[0], nb)
				if err != nil {
					return err
				}
				printBackend(cmd.OutOrStdout(), args[0], b)
				return nil
			})
		},
	}
	tg.flags(add)
	add.Flags().IntVar(&addWeight, "weight", 1, "weight 0-65535")
	add.Flags().BoolVar(&addBackup, "backup", false, "a backup: takes traffic only when no primary is available")

	remove := &cobra.Command{
		Use:   "remove SERVICE ADDRESS",
		Short: "Remove a backend from a service until the next reload",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tg.run(cmd, func(ctx context.Context, addr, token string) error {
				b, err := admin.RemoveBackend(ctx, addr, token, args[0], args[1])
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s: removed (%d active connections)\n", args[0], b.Address, b.Active)
				return nil
			})
		},
	}
	tg.flags(remove)
	cmd.AddCommand(weight, add, remove)
	return cmd
}

// printBackend is the one-line answer of a backend command.
func printBackend(w io.Writer, service string, b *admin.Backend) {
	fmt.Fprintf(w, "%s %s: %s, weight %d, %s, %d active connections\n",
		service, b.Address, b.AdminState, b.Weight, map[bool]string{true: "healthy", false: "down"}[b.Healthy], b.Active)
}

func newReloadCmd() *cobra.Command {
	var tg target
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Reload the running node's config file, as SIGHUP does; an invalid file is rejected with its errors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return tg.run(cmd, func(ctx context.Context, addr, token string) error {
				hash, err := admin.Reload(ctx, addr, token)
				var rej *admin.RejectedError
				if errors.As(err, &rej) {
					fmt.Fprintln(cmd.ErrOrStderr(), "fulcrum: config rejected, the running config is unchanged:")
					for _, e := range rej.Errors {
						fmt.Fprintln(cmd.ErrOrStderr(), "  "+e)
					}
					return exitError(1)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "reloaded: config %.12s\n", hash)
				return nil
			})
		},
	}
	tg.flags(cmd)
	return cmd
}
