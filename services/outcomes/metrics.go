package outcomes

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the outcomes service. Labels are bounded: summary groupings
// and event types, never commissioners' or journeys' ids.
type metrics struct {
	published      *prometheus.CounterVec
	publishRetries prometheus.Counter
	feedSeq        prometheus.Gauge
	feedThrough    prometheus.Gauge
	summary        *prometheus.HistogramVec
	cached         prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, c *monthCache) (*metrics, error) {
	x := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_outcomes_feed_lines_published_total",
			Help: "Pseudonymised lines published to commissioners' outcome feeds, by event type.",
		}, []string{"type"}),
		publishRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_outcomes_feed_publish_retries_total",
			Help: "Outcome-feed publishing rounds tried again (NATS unavailable, an acknowledgement missing).",
		}),
		feedThrough: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linkway_outcomes_feed_published_through_sequence",
			Help: "The JOURNEYS sequence through which the outcome feed is published, as the replica publishing it last drained its outbox.",
		}),
		feedSeq: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linkway_outcomes_feed_source_sequence",
			Help: "The feed's high-water mark: the JOURNEYS sequence of the last line known to be in the outcome feed.",
		}),
		summary: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linkway_outcomes_summary_seconds",
			Help:    "Time to compute a commissioner's summary from the outcomes view, by grouping.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"by"}),
		cached: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "linkway_outcomes_summary_cached_records",
			Help: "Journeys' records held decoded in memory for summaries (bounded).",
		}, func() float64 { return float64(c.size()) }),
	}
	if reg == nil {
		return x, nil
	}
	for _, c := range []prometheus.Collector{x.published, x.publishRetries, x.feedSeq, x.feedThrough, x.summary, x.cached} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return x, nil
}
