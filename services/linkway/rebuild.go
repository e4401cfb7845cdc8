package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"linkway/services/linkway/hub"
)

// runRebuild drops a projection's view and consumer and replays the whole
// log into a fresh view. Run it with the hub stopped (it opens the same
// data folder) or, on a cluster, with the projection's service stopped.
func runRebuild(ctx context.Context, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	cfg := hub.DefaultConfig()
	cfg.Log = log
	cfg.NATSListen = "off"
	cfg.HTTP = "127.0.0.1:0"
	fs := flag.NewFlagSet("rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	// The services start during a rebuild and open the data as the hub does.
	decodeSecrets := secretFlags(fs, &cfg)
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: linkway rebuild <projection> [flags]")
		return flag.ErrHelp
	}
	name := args[0]
	cfg.Command = "rebuild " + name
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := decodeSecrets(); err != nil {
		return err
	}
	start := time.Now()
	bar := newProgress(stderr, log, "rebuilding "+name, "events", 0)
	n, err := hub.Rebuild(ctx, cfg, name, func(applied, total uint64) {
		bar.setTotal(total)
		bar.update(applied)
	})
	if err != nil {
		return err
	}
	bar.finish(n)
	if n == 0 && errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	fmt.Fprintf(stdout, "rebuilt %s: %d events in %s\n", name, n, time.Since(start).Round(time.Millisecond))
	return nil
}
