package hub

import (
	"cmp"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/services/platform/views"
)

// HealthBucket is where the embedded hub proves, every probeEvery, that
// JetStream still takes writes. On an external NATS the probe writes to
// the leases bucket instead, which every service's user may write.
const HealthBucket = "lw_health"

const (
	probeEvery   = time.Second
	probeTimeout = 2 * time.Second
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

	mu      sync.Mutex
	kv      jetstream.KeyValue
	checked bool
	err     error
}

func newWriteProbe(js jetstream.JetStream, cfg Config, reg prometheus.Registerer) (*writeProbe, error) {
	member := cfg.Member
	if member == "" {
		member, _ = os.Hostname()
	}
	p := &writeProbe{js: js, external: cfg.NATS != "", key: "health." + cmp.Or(keyToken(member), "hub"), replicas: cfg.Replicas,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "linkway_jetstream_writable",
			Help: "1 while this process's last probe write to JetStream was stored, 0 while writes fail"})}
	if err := reg.Register(p.gauge); err != nil {
		return nil, err
	}
	return p, nil
}

// run probes until ctx ends. It never fails the hub: a store that cannot
// be written is a state to report, not a reason to stop.
func (p *writeProbe) run(ctx context.Context) error {
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
		if err != nil {
			p.gauge.Set(0)
		} else {
			p.gauge.Set(1)
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
			kv, err = p.js.KeyValue(ctx, views.LeasesBucket)
		} else {
			// Small and self-limiting: the bucket itself never fills.
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
	_, err := kv.Put(ctx, p.key, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
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
