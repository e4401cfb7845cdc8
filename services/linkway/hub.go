package main

import (
	"context"
	"flag"
	"io"
	"log/slog"

	"linkway/services/hub"
)

// hubFlags binds the flags shared by every command that opens the hub's
// NATS: flag, then environment variable, then default.
func hubFlags(fs *flag.FlagSet, cfg *hub.Config) {
	fs.StringVar(&cfg.HTTP, "http", env("LINKWAY_HTTP", cfg.HTTP), "HTTP listen address [LINKWAY_HTTP]")
	fs.StringVar(&cfg.Data, "data", env("LINKWAY_DATA", cfg.Data), "data folder: the embedded JetStream store [LINKWAY_DATA]")
	fs.StringVar(&cfg.NATS, "nats", env("LINKWAY_NATS", cfg.NATS), "external NATS URL instead of the embedded server [LINKWAY_NATS]")
	fs.StringVar(&cfg.NATSListen, "nats-listen", env("LINKWAY_NATS_LISTEN", cfg.NATSListen),
		"where the embedded NATS server also listens; off for in-process only [LINKWAY_NATS_LISTEN]")
	fs.IntVar(&cfg.Replicas, "replicas", envInt("LINKWAY_REPLICAS", cfg.Replicas), "replicas of streams and buckets (3 on a cluster) [LINKWAY_REPLICAS]")
}

func runHub(ctx context.Context, args []string, log *slog.Logger, stderr io.Writer) error {
	cfg := hub.DefaultConfig()
	cfg.Log = log
	fs := flag.NewFlagSet("hub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	fs.BoolVar(&cfg.Demo, "demo", envBool("LINKWAY_DEMO"), "seed the demo organisations and keys [LINKWAY_DEMO]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	h, err := hub.Start(ctx, cfg)
	if err != nil {
		return err
	}
	err = h.Wait()
	log.Info("linkway hub stopped")
	return err
}
