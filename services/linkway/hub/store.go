package hub

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"linkway/services/platform/journal"
	"linkway/services/platform/sealing"
)

// OpenStore opens the event store a hub with cfg would use (its NATS, its
// master key, personal data sealed per person) without starting any
// service or projection: for tools that write history, such as
// `linkway gen`. Close the returned connection when done.
func OpenStore(ctx context.Context, cfg Config) (*journal.Store, *Conn, error) {
	c, err := Connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	master, err := masterKey(cfg)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	keyring, err := sealing.Open(ctx, c.JS, master, cfg.Replicas)
	if err != nil {
		c.Close()
		return nil, nil, masterKeyError(err)
	}
	storeCfg := journalConfig(cfg)
	storeCfg.Sealer = keyring
	store, err := journal.Open(ctx, c.JS, storeCfg, prometheus.NewRegistry())
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return store, c, nil
}

// journalConfig is the event store's config of a hub with cfg:
// cfg.Journal (journal.DefaultConfig() when zero) on the hub's replicas.
func journalConfig(cfg Config) journal.Config {
	jc := cfg.Journal
	if jc == (journal.Config{}) {
		jc = journal.DefaultConfig()
	}
	jc.Replicas = cfg.Replicas
	return jc
}
