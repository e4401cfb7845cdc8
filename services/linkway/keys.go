package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"

	"linkway/services/linkway/hub"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/orgs"
)

const keysUsage = `usage:
  linkway keys create --org CODE   make a key for a registered organisation (shown once)
  linkway keys list                list keys (ids, organisations, kinds; never the keys)
  linkway keys revoke KEY_ID       revoke a key
each takes --data DIR (the hub stopped: a data folder has one process at a time) or, while the
hub runs, --nats nats://127.0.0.1:4222 (its --nats-listen, off unless given) with --data DIR:
the hub user's password is then read from DIR/nats-credentials (owner-only); for another
machine's NATS give its user in the URL (nats://hub:PASSWORD@host:4222)`

// runKeys manages API keys. Keys are stored only as hashes; a new key is
// printed once and cannot be shown again.
func runKeys(ctx context.Context, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, keysUsage)
		return flag.ErrHelp
	}
	cfg := hub.DefaultConfig()
	cfg.Log = log
	cfg.NATSListen = "off"
	cfg.Command = "keys " + args[0]
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	org := fs.String("org", "", "organisation code (keys create)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	conn, err := hub.Connect(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	keys, err := apikeys.OpenKeyRing(ctx, conn.JS, cfg.Replicas)
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		registry, err := orgs.Open(ctx, conn.JS, cfg.Replicas)
		if err != nil {
			return err
		}
		o, ok := registry.Get(*org)
		if !ok {
			return fmt.Errorf("no registered organisation %q: register it first with linkway orgs add", *org)
		}
		if o.Disabled {
			return fmt.Errorf("organisation %s is disabled: linkway orgs enable %s first", o.ID, o.ID)
		}
		key, rec, err := keys.NewKey(ctx, o.ID, o.Kind)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", key)
		fmt.Fprintf(stderr, "key %s for %s (%s): store it now, it is not shown again\n", rec.KeyID, o.ID, o.Kind)
		return nil
	case "list":
		recs, err := keys.List(ctx)
		if err != nil {
			return err
		}
		slices.SortFunc(recs, func(a, b apikeys.KeyRecord) int { return strings.Compare(a.OrgID+a.KeyID, b.OrgID+b.KeyID) })
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY ID\tORGANISATION\tKIND\tCREATED")
		for _, r := range recs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.KeyID, r.OrgID, r.Kind, r.Created.Format("2006-01-02 15:04"))
		}
		return tw.Flush()
	case "revoke":
		if fs.NArg() != 1 {
			return fmt.Errorf("usage: linkway keys revoke KEY_ID")
		}
		found, err := keys.Revoke(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("no key %s", fs.Arg(0))
		}
		fmt.Fprintf(stdout, "revoked %s\n", fs.Arg(0))
		return nil
	}
	fmt.Fprintln(stderr, keysUsage)
	return fmt.Errorf("unknown keys command %q", args[0])
}
