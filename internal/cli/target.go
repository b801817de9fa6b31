package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/fulcrum-lb/fulcrum/internal/config"
)

// defaultConfigPath is the config file of every command run without -c:
// the one run and check load, and the one status, backend, reload and ha
// read the admin address and token from when it exists. A variable so that
// tests can point it elsewhere.
var defaultConfigPath = "/etc/fulcrum/fulcrum.yaml"

// defaultAdmin is where the admin API is looked for without a config.
const defaultAdmin = "127.0.0.1:9900"

// configFlag adds -c/--config to a command that runs from a config (run,
// check).
func configFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVarP(file, "config", "c", defaultConfigPath, "config file")
}

// target is where an admin command sends its request: the admin API's
// address and the bearer token, from flags or the config.
type target struct{ addr, file, tokenFile string }

func (tg *target) flags(cmd *cobra.Command) {
	addrFlags(cmd, &tg.addr, &tg.file)
	cmd.Flags().StringVar(&tg.tokenFile, "token-file", "", "file with the admin bearer token (default: admin.token_file of the config)")
}

// addrFlags adds the flags that say where the admin API is.
func addrFlags(cmd *cobra.Command, addr, file *string) {
	cmd.Flags().StringVar(addr, "admin", "", "admin API address (default: admin.listen of the config, else "+defaultAdmin+")")
	cmd.Flags().StringVarP(file, "config", "c", "", "read the admin address and token file from this config (default "+defaultConfigPath+" when it exists)")
}

// run resolves the target and calls f with a bounded context.
func (tg *target) run(cmd *cobra.Command, f func(ctx context.Context, addr, token string) error) error {
	addr, token, err := tg.resolve(true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
	defer cancel()
	return f(ctx, addr, token)
}

// adminAddr is the admin API's address for a command that sends no token.
func adminAddr(addr, file string) (string, error) {
	tg := target{addr: addr, file: file}
	addr, _, err := tg.resolve(false)
	return addr, err
}

// resolve works out the admin API's address and, withToken, the token to
// send ("" for none). Flags come first; what they leave open is read from
// the config: the -c file, else the default config when it exists, as run
// and check would load it.
func (tg *target) resolve(withToken bool) (addr, token string, err error) {
	addr, tokenFile := tg.addr, tg.tokenFile
	if addr == "" || (withToken && tokenFile == "") {
		file := tg.file
		if file == "" {
			if _, err := os.Stat(defaultConfigPath); !errors.Is(err, fs.ErrNotExist) {
				file = defaultConfigPath
			}
		}
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
	}
	if addr == "" {
		addr = defaultAdmin
	}
	if withToken && tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return "", "", fmt.Errorf("admin token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return addr, token, nil
}

// adminSection reads the admin settings of a config file, its token_file
// resolved as Load resolves it. A file that does not validate (the one
// `fulcrum reload` is about to be told about, say, or one whose token file
// this user may not read) still names the admin API: its admin section is
// read leniently, so that the running node can answer with every error.
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
	loose.Admin.TokenFile = (&config.Config{File: file}).FilePath(loose.Admin.TokenFile)
	return loose.Admin, nil
}
