package outcomes

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the outcomes service. Labels are bounded: summary groupings
// and event types, never commissioners' or journeys' ids.
type metrics struct {
	published      *prometheus.CounterVec
	publishRetries prometheus.Counter
	summary        *prometheus.HistogramVec
	journeys       prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, m *model) (*metrics, error) {
	x := &metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_outcomes_feed_lines_published_total",
			Help: "Pseudonymised lines published to commissioners' outcome feeds, by event type.",
		}, []string{"type"}),
		publishRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_outcomes_feed_publish_retries_total",
			Help: "Outcome-feed publishes tried again (NATS unavailable, or another replica storing the same line).",
		}),
		summary: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linkway_outcomes_summary_seconds",
			Help:    "Time to compute a commissioner's summary from the in-memory view, by grouping.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}, []string{"by"}),
		journeys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "linkway_outcomes_view_journeys",
			Help: "Journeys held in the outcomes view.",
		}, func() float64 {
			m.mu.RLock()
			defer m.mu.RUnlock()
			return float64(len(m.journeys))
		}),
	}
	if reg == nil {
		return x, nil
	}
	for _, c := range []prometheus.Collector{x.published, x.publishRetries, x.summary, x.journeys} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return x, nil
}
