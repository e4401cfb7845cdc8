// Command linkway runs the Linkway social-prescribing hub and its tools.
//
//	linkway hub [flags]                   every service and an embedded NATS server
//	linkway serve <service> [flags]       one service alone, as one of many replicas
//	linkway rebuild all|<view> [flags]    drop views and replay the log into them
//	linkway snapshot DIR [flags]          a checkpoint of the views a new replica can start from
//	linkway gen --journeys N [flags]      write synthetic journey history
//	linkway keys create|list|revoke       manage API keys (stored only as hashes)
//	linkway orgs add|list|disable|enable  manage the organisation register
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "linkway:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  linkway hub [flags]                   run every service with an embedded NATS server
  linkway serve <service> [flags]       run one service alone (--nats URL), as one of many replicas
  linkway rebuild all|<view> [flags]    drop views and replay the log into them (hub stopped)
  linkway snapshot DIR [flags]          write a checkpoint of the views a new replica can start from (--views)
  linkway gen --journeys N [flags]      write synthetic journey history (benchmarks, demos)
  linkway keys create|list|revoke       manage API keys (stored only as hashes)
  linkway orgs add|list|disable|enable  manage the organisation register (before keys create)
run 'linkway <command> -h' for a command's flags`

func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return flag.ErrHelp
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))
	switch args[0] {
	case "hub":
		return runHub(ctx, args[1:], log, stderr)
	case "serve":
		return runServe(ctx, args[1:], log, stderr)
	case "rebuild":
		return runRebuild(ctx, args[1:], log, stdout, stderr)
	case "snapshot":
		return runSnapshot(ctx, args[1:], log, stdout, stderr)
	case "gen":
		return runGen(ctx, args[1:], log, stdout, stderr)
	case "keys":
		return runKeys(ctx, args[1:], log, stdout, stderr)
	case "orgs":
		return runOrgs(ctx, args[1:], log, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("LINKWAY_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// env returns the environment variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envBool(name string) bool {
	b, _ := strconv.ParseBool(os.Getenv(name))
	return b
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if f, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return f
	}
	return def
}
