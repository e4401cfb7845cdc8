package main

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"linkway/services/linkway/hub"
)

// hubFlags binds the flags shared by every command that opens the hub's
// NATS: flag, then environment variable, then default.
func hubFlags(fs *flag.FlagSet, cfg *hub.Config) {
	fs.StringVar(&cfg.HTTP, "http", env("LINKWAY_HTTP", cfg.HTTP), "HTTP listen address [LINKWAY_HTTP]")
	fs.StringVar(&cfg.Data, "data", env("LINKWAY_DATA", cfg.Data), "data folder: the embedded JetStream store [LINKWAY_DATA]")
	fs.StringVar(&cfg.ViewsDir, "views", env("LINKWAY_VIEWS", cfg.ViewsDir),
		"folder of this process's views (an embedded store, rebuilt from the log when missing); default DATA/views [LINKWAY_VIEWS]")
	fs.StringVar(&cfg.NATS, "nats", env("LINKWAY_NATS", cfg.NATS), "external NATS URL instead of the embedded server [LINKWAY_NATS]")
	fs.StringVar(&cfg.NATSListen, "nats-listen", env("LINKWAY_NATS_LISTEN", cfg.NATSListen),
		"where the embedded NATS server also listens (host:port), admitting only the users of DATA/nats-credentials; off (the default) for in-process only [LINKWAY_NATS_LISTEN]")
	fs.StringVar(&cfg.Member, "replica-name", env("LINKWAY_REPLICA_NAME", ""),
		"this replica's name among replicas on one NATS (default: host name) [LINKWAY_REPLICA_NAME]")
	fs.IntVar(&cfg.Replicas, "replicas", envInt("LINKWAY_REPLICAS", cfg.Replicas), "replicas of streams and buckets (3 on a cluster) [LINKWAY_REPLICAS]")
	fs.DurationVar(&cfg.LeaseTTL, "lease-ttl", cfg.LeaseTTL,
		"on an external NATS, how long a dead replica's feed leases last before another replica publishes the feeds (views need no leases: each replica keeps its own)")
}

// runServe runs one service alone: `linkway serve <service> --nats URL`.
// Any number of replicas may run side by side against the same NATS.
func runServe(ctx context.Context, args []string, log *slog.Logger, stderr io.Writer) error {
	if len(args) == 0 || !slices.Contains(hub.ServiceNames, args[0]) {
		fmt.Fprintf(stderr, "usage: linkway serve <service> [flags]; services: %v\n", hub.ServiceNames)
		return flag.ErrHelp
	}
	return runHub(ctx, args[1:], log, stderr, args[0])
}

// secretFlags binds the keys that open the hub's data: the master key
// (personal data is sealed with keys it wraps) and the pseudonym secret
// with the deprivation lookup (the outcomes service starts with the hub,
// and so during a rebuild). The returned function decodes the master key
// once the flags are parsed.
func secretFlags(fs *flag.FlagSet, cfg *hub.Config) (decode func() error) {
	masterKey := fs.String("master-key", "", "base64 of the 32-byte key that wraps every person's data key; "+
		"prefer LINKWAY_MASTER_KEY, which stays out of the process list [LINKWAY_MASTER_KEY]")
	fs.StringVar(&cfg.Outcomes.PseudonymKey, "pseudonym-key", env("LINKWAY_PSEUDONYM_KEY", ""),
		"secret for commissioners' person pseudonyms; required without --demo [LINKWAY_PSEUDONYM_KEY]")
	fs.StringVar(&cfg.Outcomes.PseudonymKeyID, "pseudonym-key-id", env("LINKWAY_PSEUDONYM_KEY_ID", cfg.Outcomes.PseudonymKeyID),
		"version of the pseudonym secret [LINKWAY_PSEUDONYM_KEY_ID]")
	fs.StringVar(&cfg.Outcomes.DeprivationFile, "deprivation-file", env("LINKWAY_DEPRIVATION", ""),
		"CSV of postcode, LSOA code, IMD 2019 decile for commissioners' deprivation figures (services/outcomes/data/README.md "+
			"says how to make it); without it, a small illustrative sample bundled for the demo [LINKWAY_DEPRIVATION]")
	fs.StringVar(&cfg.Outcomes.DeprivationFile, "deprivation", env("LINKWAY_DEPRIVATION", ""), "the same as --deprivation-file")
	return func() error {
		mk := cmp.Or(*masterKey, env("LINKWAY_MASTER_KEY", ""))
		if mk == "" {
			return nil
		}
		key, err := base64.StdEncoding.DecodeString(mk)
		if err != nil || len(key) != 32 {
			return errors.New("the master key must be the base64 of 32 random bytes (openssl rand -base64 32)")
		}
		cfg.MasterKey = key
		return nil
	}
}

func runHub(ctx context.Context, args []string, log *slog.Logger, stderr io.Writer, only ...string) error {
	cfg := hub.DefaultConfig()
	cfg.Log = log
	cfg.Services = only
	name := "hub"
	if len(only) > 0 {
		name = "serve " + only[0]
	}
	cfg.Command = name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubFlags(fs, &cfg)
	fs.BoolVar(&cfg.Demo, "demo", envBool("LINKWAY_DEMO"), "seed the demo organisations and keys [LINKWAY_DEMO]")
	// None unless asked (make run asks for 2,000): a plain --demo hub, as
	// the acceptance checks start, reads its feeds from their beginning.
	fs.IntVar(&cfg.DemoHistory, "demo-history", envInt("LINKWAY_DEMO_HISTORY", 0),
		"with --demo, journeys of synthetic history (a year of the demo organisations') written on the first start, "+
			"when the log is empty; make run writes 2000; 0 for none [LINKWAY_DEMO_HISTORY]")
	decodeSecrets := secretFlags(fs, &cfg)
	fs.StringVar(&cfg.TLSCert, "tls-cert", env("LINKWAY_TLS_CERT", ""), "TLS certificate file: serve HTTPS [LINKWAY_TLS_CERT]")
	fs.StringVar(&cfg.TLSKey, "tls-key", env("LINKWAY_TLS_KEY", ""), "TLS private key file [LINKWAY_TLS_KEY]")
	fs.StringVar(&cfg.PublicURL, "public-url", env("LINKWAY_PUBLIC_URL", ""),
		"the URL people and systems reach the hub at (behind a TLS proxy, its https URL): links in answers, and with https Secure cookies and HSTS; default the listen address [LINKWAY_PUBLIC_URL]")
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", env("LINKWAY_TRUSTED_PROXIES", ""),
		"comma-separated addresses or CIDR ranges of the proxies whose X-Forwarded-For names the client [LINKWAY_TRUSTED_PROXIES]")
	fs.Float64Var(&cfg.RateLimit.Rate, "rate-limit", envFloat("LINKWAY_RATE_LIMIT", cfg.RateLimit.Rate),
		"requests per second allowed to each API key; 0 for no limit [LINKWAY_RATE_LIMIT]")
	fs.IntVar(&cfg.RateLimit.Burst, "rate-burst", envInt("LINKWAY_RATE_BURST", cfg.RateLimit.Burst), "burst allowed above the rate [LINKWAY_RATE_BURST]")
	fs.IntVar(&cfg.Linkwork.Uncontactable.Attempts, "uncontactable-attempts", envInt("LINKWAY_UNCONTACTABLE_ATTEMPTS", cfg.Linkwork.Uncontactable.Attempts),
		"failed contact attempts that flag a journey for closure as uncontactable [LINKWAY_UNCONTACTABLE_ATTEMPTS]")
	fs.DurationVar(&cfg.Linkwork.Uncontactable.Within, "uncontactable-within", cfg.Linkwork.Uncontactable.Within,
		"span within which those attempts must fall")
	var services string
	if len(only) == 0 {
		fs.StringVar(&services, "services", env("LINKWAY_SERVICES", ""),
			fmt.Sprintf("comma-separated services to run (default all: %s) [LINKWAY_SERVICES]", strings.Join(hub.ServiceNames, ",")))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if services != "" {
		cfg.Services = strings.Split(services, ",")
	}
	if err := decodeSecrets(); err != nil {
		return err
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	h, err := hub.Start(ctx, cfg)
	if err != nil {
		return err
	}
	err = h.Wait()
	log.Info("linkway hub stopped")
	return err
}
