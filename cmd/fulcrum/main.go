// Command fulcrum is a highly available load balancer in one binary.
package main

import (
	"os"

	"github.com/fulcrum-lb/fulcrum/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
