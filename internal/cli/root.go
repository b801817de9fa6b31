// Package cli implements fulcrum's command line: run, check, status,
// backend, reload, ha, demo, realserver and version.
package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3";
// otherwise it comes from the module's build info.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit status without another message: the command
// already printed what went wrong.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Main runs the command line and returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(joinOptionalValues(root, args))
	if err := root.Execute(); err != nil {
		var code exitError
		if errors.As(err, &code) {
			return int(code)
		}
		fmt.Fprintln(stderr, "fulcrum:", err)
		return 1
	}
	return 0
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "fulcrum",
		Short: "A highly available layer-4/layer-7 load balancer in one binary",
		Long: `fulcrum spreads TCP and UDP traffic over backend servers with every LVS
scheduler, keeps clients on their backend with persistence, and reloads its
config without dropping connections.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCmd(), newCheckCmd(), newStatusCmd(), newHACmd(), newBackendCmd(), newReloadCmd(), newDemoCmd(), newRealserverCmd(), newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "fulcrum %s\n", version())
			return nil
		},
	}
}

// newLogger builds the process logger; level is adjustable at run time.
func newLogger(w io.Writer, format string, level *slog.LevelVar) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// joinOptionalValues rewrites "--watch 1s" as "--watch=1s" for the flags
// whose value is optional (a bare --watch means --watch=2s): pflag takes
// the value of such a flag only after "=", and would see "1s" as an
// argument the command refuses. The next word is joined only when it is a
// valid value, so "--watch --json" keeps its meaning.
func joinOptionalValues(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		var f *pflag.Flag
		switch {
		case strings.Contains(a, "="):
		case strings.HasPrefix(a, "--"):
			f = cmd.Flags().Lookup(a[2:])
		case len(a) == 2 && a[0] == '-':
			f = cmd.Flags().ShorthandLookup(a[1:])
		}
		if f != nil && f.NoOptDefVal != "" && i+1 < len(args) && validValue(f, args[i+1]) {
			a += "=" + args[i+1]
			i++
		}
		out = append(out, a)
	}
	return out
}

// validValue reports whether v is meant as a value for f. A bare number
// counts for a duration, so that "--watch 1" is told its unit is missing
// rather than that "1" is an unknown command.
func validValue(f *pflag.Flag, v string) bool {
	switch f.Value.Type() {
	case "duration":
		_, err := time.ParseDuration(v)
		_, nerr := strconv.ParseFloat(v, 64)
		return err == nil || nerr == nil
	}
	return false
}
