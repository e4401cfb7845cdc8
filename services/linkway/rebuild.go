package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"linkway/services/hub"
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
	// The services start during a rebuild; outcomes needs its pseudonym key
	// (and deprivation lookup) to start outside --demo.
	fs.StringVar(&cfg.Settings.PseudonymKey, "pseudonym-key", env("LINKWAY_PSEUDONYM_KEY", ""),
		"secret for commissioners' person pseudonyms [LINKWAY_PSEUDONYM_KEY]")
	fs.StringVar(&cfg.Settings.PseudonymKeyID, "pseudonym-key-id", env("LINKWAY_PSEUDONYM_KEY_ID", cfg.Settings.PseudonymKeyID),
		"version of the pseudonym secret [LINKWAY_PSEUDONYM_KEY_ID]")
	fs.StringVar(&cfg.Settings.DeprivationFile, "deprivation", env("LINKWAY_DEPRIVATION", ""),
		"CSV of postcode, LSOA code, IMD decile [LINKWAY_DEPRIVATION]")
	// Personal data on the log is sealed: the services that start during a
	// rebuild open it with the master key, as the hub does.
	masterKey := fs.String("master-key", "", "base64 of the 32-byte master key; prefer LINKWAY_MASTER_KEY [LINKWAY_MASTER_KEY]")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		fmt.Fprintln(stderr, "usage: linkway rebuild <projection> [flags]")
		return flag.ErrHelp
	}
	name := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if mk := env("LINKWAY_MASTER_KEY", *masterKey); *masterKey != "" || mk != "" {
		if *masterKey != "" {
			mk = *masterKey
		}
		key, err := base64.StdEncoding.DecodeString(mk)
		if err != nil || len(key) != 32 {
			return errors.New("the master key must be the base64 of 32 random bytes (openssl rand -base64 32)")
		}
		cfg.MasterKey = key
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
