package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"linkway/ops/synthhistory"
	"linkway/services/linkway/hub"
)

// runGen writes synthetic journey history through the event store:
// `linkway gen --journeys 100000 --seed 1 [--data DIR | --nats URL]`.
// Views catch up when the hub next runs (or with `linkway rebuild`).
func runGen(ctx context.Context, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	cfg := hub.DefaultConfig()
	cfg.Log = log
	cfg.NATSListen = "off"
	cfg.Command = "gen"
	sc := synthhistory.DefaultConfig()
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	fs.IntVar(&sc.Journeys, "journeys", sc.Journeys, "journeys to write")
	fs.Uint64Var(&sc.Seed, "seed", sc.Seed, "seed of the history: the same seed writes the same journeys, so a rerun appends nothing")
	fs.IntVar(&sc.Concurrency, "concurrency", sc.Concurrency, "journeys written at once")
	fs.IntVar(&sc.Practices, "practices", sc.Practices, "GP practices referring (A81001 and A81002, the demo ones, among them)")
	fs.IntVar(&sc.Teams, "teams", sc.Teams, "link-worker teams (U12345, the demo one, among them)")
	fs.BoolVar(&cfg.Demo, "demo", envBool("LINKWAY_DEMO"), "data of a --demo hub: use (or make) its demo master key [LINKWAY_DEMO]")
	decodeSecrets := secretFlags(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gen takes no arguments (got %v)", fs.Args())
	}
	if err := decodeSecrets(); err != nil {
		return err
	}
	if sc.Journeys < 1 {
		return errors.New("--journeys must be at least 1")
	}
	store, conn, err := hub.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	bar := newProgress(stderr, log, "gen", "journeys", uint64(sc.Journeys))
	sc.Progress = func(journeys, _ uint64) { bar.update(journeys) }
	start := time.Now()
	st, err := synthhistory.Generate(ctx, store, sc)
	bar.finish(st.Journeys)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "wrote %d journeys, %d events in %s (%.0f events/s)\n", st.Journeys, st.Events,
		elapsed.Round(time.Millisecond), float64(st.Events)/elapsed.Seconds())
	for _, k := range slices.Sorted(maps.Keys(st.Outcomes)) {
		fmt.Fprintf(stdout, "  %-32s %d\n", k, st.Outcomes[k])
	}
	return nil
}
