package views

import "github.com/prometheus/client_golang/prometheus"

// Metrics of every projection runner in a process.
type Metrics struct {
	applied      *prometheus.CounterVec
	applySeconds *prometheus.HistogramVec
	lagEvents    *prometheus.GaugeVec
	lagSeconds   *prometheus.GaugeVec
	errors       *prometheus.CounterVec
}

// NewMetrics registers the projection metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_projection_applied_events_total",
			Help: "Journey events applied to a view.",
		}, []string{"projection"}),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linkway_projection_apply_duration_seconds",
			Help:    "Time to apply one event to a view, not counting the batch's flush.",
			Buckets: prometheus.ExponentialBuckets(0.000005, 4, 10),
		}, []string{"projection"}),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linkway_projection_lag_events",
			Help: "Events in the log not yet applied to the view, by partition (all: unpartitioned).",
		}, []string{"projection", "partition"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linkway_projection_lag_seconds",
			Help: "Age of the last applied event while the view is behind; 0 when caught up.",
		}, []string{"projection", "partition"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_projection_errors_total",
			Help: "View write failures (retried) and undecodable events (skipped).",
		}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{m.applied, m.applySeconds, m.lagEvents, m.lagSeconds, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
