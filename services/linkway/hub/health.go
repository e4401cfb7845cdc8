package hub

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/services/platform/leases"
)

// HealthBucket is where the embedded hub proves, every probeEvery, that
// JetStream still takes writes. On an external NATS the probe writes to
// the leases bucket instead, which every service's user may write.
const HealthBucket = "lw_health"

const (
	probeEvery   = time.Second
	probeTimeout = 2 * time.Second
	// probeSize is a probe record's size: more than a page, so that a full
	// disk fails it at once rather than when the last page fills.
	probeSize = 8 << 10
	// An embedded server whose store stopped taking writes with no answer
	// (a write to disk failed: the store refuses writes until restarted)
	// is restarted once its disk has room again, after recoverAfter failed
	// probes, and at most every recoverEvery.
	recoverAfter = 5
	recoverEvery = 30 * time.Second
	recoverRoom  = 1 << 20
)

// writeProbe writes one small record every probeEvery and remembers
// whether the last write was stored: the truth /readyz tells. A full disk,
// a store over its limits, a lost quorum: each makes the write fail, and
// the next write that succeeds makes the hub ready again by itself.
type writeProbe struct {
	js       jetstream.JetStream
	external bool
	key      string
	replicas int
	gauge    prometheus.Gauge
	log      *slog.Logger
	// recover, when set, starts the embedded server again if its disk has
	// room (restartEmbedded); it says why not otherwise.
	recover func() error

	mu      sync.Mutex
	kv      jetstream.KeyValue
	checked bool
	err     error
}

func (h *Hub) newWriteProbe(cfg Config) (*writeProbe, error) {
	member := cfg.Member
	if member == "" {
		member, _ = os.Hostname()
	}
	p := &writeProbe{js: h.js, external: cfg.NATS != "", key: "health." + cmp.Or(keyToken(member), "hub"), replicas: cfg.Replicas,
		log: cfg.Log, gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "linkway_jetstream_writable",
			Help: "1 while this process's last probe write to JetStream was stored, 0 while writes fail"})}
	if e := h.embedded; e != nil {
		p.recover = func() error {
			if err := roomFor(e.storeDir(), recoverRoom); err != nil {
				return err
			}
			return h.restartEmbedded()
		}
	}
	if err := h.registry.Register(p.gauge); err != nil {
		return nil, err
	}
	return p, nil
}

// run probes until ctx ends. It never fails the hub: a store that cannot
// be written is a state to report (and, embedded, to recover from), not a
// reason to stop.
func (p *writeProbe) run(ctx context.Context) error {
	failed := 0
	var lastRecover time.Time
	for {
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := p.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		p.mu.Lock()
		p.checked, p.err = true, err
		p.mu.Unlock()
		if err == nil {
			p.gauge.Set(1)
			failed = 0
		} else {
			p.gauge.Set(0)
			failed++
			if failed == 1 {
				p.log.Error("JetStream takes no writes: /readyz is 503 until it does", "err", err)
			}
		}
		// A refusal with a reason (a limit reached) passes once space is
		// freed; no answer at all is a store that refuses writes for good.
		var apiErr *jetstream.APIError
		if p.recover != nil && failed >= recoverAfter && !errors.As(err, &apiErr) && time.Since(lastRecover) >= recoverEvery {
			lastRecover = time.Now()
			if rerr := p.recover(); rerr != nil {
				p.log.Warn("the embedded NATS server cannot be started again yet", "err", rerr)
			} else {
				p.log.Info("the embedded NATS server was started again to take writes after a write failure")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(probeEvery):
		}
	}
}

func (p *writeProbe) probe(ctx context.Context) error {
	p.mu.Lock()
	kv := p.kv
	p.mu.Unlock()
	if kv == nil {
		var err error
		if p.external {
			kv, err = p.js.KeyValue(ctx, leases.Bucket)
		} else {
			// One record kept: the bucket itself never fills.
			kv, err = p.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: HealthBucket, Description: "Linkway write probe: /readyz is 503 while this cannot be written",
				History: 1, Storage: jetstream.FileStorage, Replicas: max(p.replicas, 1), TTL: time.Hour,
			})
		}
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.kv = kv
		p.mu.Unlock()
	}
	record := make([]byte, probeSize)
	copy(record, time.Now().UTC().Format(time.RFC3339Nano))
	_, err := kv.Put(ctx, p.key, record)
	return err
}

// writable reports whether the last probe write was stored (false before
// the first one has been tried).
func (p *writeProbe) writable() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.checked {
		return false, errors.New("not probed yet")
	}
	return p.err == nil, p.err
}

// keyToken keeps a name safe as one token of a KV key.
func keyToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}
