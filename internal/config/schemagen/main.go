// Command schemagen writes docs/fulcrum.schema.json, the JSON Schema of the
// config file, from the types and doc comments of package config. Run it
// through go generate in internal/config:
//
//	go generate ./internal/config/
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/fulcrum-lb/fulcrum/internal/config/schema"
)

func main() {
	out := flag.String("o", "", "file to write (default standard output)")
	src := flag.String("src", ".", "directory of package config's Go files, for the doc comments")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	docs, err := schema.ParseDocs(src)
	if err != nil {
		return err
	}
	b, err := schema.Config(docs)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
