package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/fulcrum-lb/fulcrum/internal/admin"
	"github.com/fulcrum-lb/fulcrum/internal/config"
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
	tg.flags(release)
	cmd.AddCommand(release)
	return cmd
}

func adminFlags(cmd *cobra.Command, addr, file, tokenFile *string) {
	cmd.Flags().StringVar(addr, "admin", "", "admin API address (default: from --config, else 127.0.0.1:9900)")
	cmd.Flags().StringVarP(file, "config", "c", "", "read the admin address and token file from this config")
	cmd.Flags().StringVar(tokenFile, "token-file", "", "file with the admin bearer token (default: admin.token_file of --config)")
}

// adminTarget works out where the admin API is and which token to send.
func adminTarget(addr, file, tokenFile string) (string, string, error) {
	if file != "" {
		adm, err := adminSection(file)
		if err != nil {
			return "", "", err
		}
		if addr == "" {
			if adm.Listen == "off" {
				return "", "", fmt.Errorf("%s: the admin API is off", file)
			}
			addr = adm.Listen
		}
		if tokenFile == "" {
			tokenFile = adm.TokenFile
		}
	}
	if addr == "" {
		addr = "127.0.0.1:9900"
	}
	token := ""
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", "", err
		}
		token = strings.TrimSpace(string(b))
	}
	return addr, token, nil
}

// adminSection reads the admin settings of a config file. A file that
// does not validate (the one `fulcrum reload` is about to be told about,
// say) still names the admin API: its admin section is read leniently,
// so that the running node can answer with every error.
func adminSection(file string) (config.Admin, error) {
	cfg, err := config.Load(file)
	if err == nil {
		return cfg.Admin, nil
	}
	data, rerr := os.ReadFile(file)
	if rerr != nil {
		return config.Admin{}, err
	}
	var loose struct {
		Admin config.Admin `yaml:"admin"`
	}
	if yaml.Unmarshal(data, &loose) != nil {
		return config.Admin{}, err
	}
	return loose.Admin, nil
}
