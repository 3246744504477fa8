package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/internal/buildinfo"
)

const usage = `silentauth: silent authentication at the edge for Envoy and Istio.

Usage:
  silentauth serve [--config FILE] [flags]   run the service (no --config: development defaults on 127.0.0.1)
  silentauth config example                  print a complete, commented configuration
  silentauth config validate --config FILE   check a configuration: report every problem, and warnings
  silentauth check [flags]                   send one Envoy-shaped CheckRequest and print the answer
  silentauth version                         print the version, commit and Go version of this build

Run "silentauth COMMAND --help" for the flags of a command.
`

// run is the whole program, with its environment injected so tests can
// drive it: args without the program name, getenv for the environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a command is required")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig("serve", args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, getenv, stderr)
	case "config":
		return configCmd(args[1:], getenv, stdout, stderr)
	case "check":
		return checkCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "silentauth", buildinfo.Get())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func configCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(`config needs a subcommand: "example" or "validate"`)
	}
	switch args[0] {
	case "example":
		_, err := stdout.Write(config.Example())
		return err
	case "validate":
		cfg, err := loadConfig(args[0], args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "configuration is valid (store %s, grpc %s)\n", cfg.Store.Backend, cfg.Listen.GRPC.Address)
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		return nil
	default:
		return fmt.Errorf("unknown config subcommand %q", args[0])
	}
}

// loadConfig builds the configuration: defaults (development defaults
// when no file is given), then the file, the environment and the flags,
// validated and completed.
func loadConfig(name string, args []string, getenv func(string) string, stderr io.Writer) (config.Completed, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration file (default: development defaults on 127.0.0.1)")
	overrides := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return config.Completed{}, err
	}
	if fs.NArg() > 0 {
		return config.Completed{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	base := config.Development()
	if *path != "" {
		base = config.Default()
	}
	cfg, err := config.Resolve(base, *path, getenv, overrides)
	if err != nil {
		return config.Completed{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	done, err := cfg.Complete()
	if err != nil {
		return config.Completed{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return done, nil
}
