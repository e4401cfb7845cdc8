package views

import "github.com/prometheus/client_golang/prometheus"

// ReaderMetrics are the metrics of a process's reader (the version 2 read
// side). Labels are view names and fixed words: never journey ids.
type ReaderMetrics struct {
	events        prometheus.Counter
	undecodable   prometheus.Counter
	applied       *prometheus.CounterVec
	checkpoint    *prometheus.GaugeVec
	lagEvents     prometheus.Gauge
	lagSeconds    prometheus.Gauge
	commitSeconds *prometheus.HistogramVec
	restarts      *prometheus.CounterVec
	stateLoads    prometheus.Counter
	stateCached   prometheus.Gauge
}

// NewReaderMetrics registers the reader's metrics with reg.
func NewReaderMetrics(reg prometheus.Registerer) (*ReaderMetrics, error) {
	m := &ReaderMetrics{
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_reader_events_total",
			Help: "Journey events read from the log, decoded and folded (once each, for every view).",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_reader_undecodable_events_total",
			Help: "Messages of the log this version cannot read: skipped, the views' checkpoints moved past them.",
		}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_reader_applied_events_total",
			Help: "Journey events applied to a view (not counting those a view had already applied).",
		}, []string{"view"}),
		checkpoint: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "linkway_reader_view_checkpoint_sequence",
			Help: "The last stream sequence a view has applied and committed.",
		}, []string{"view"}),
		lagEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linkway_reader_lag_events",
			Help: "Events in the log after the last one read.",
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linkway_reader_lag_seconds",
			Help: "Age of the last event read while more are waiting; 0 when caught up.",
		}),
		commitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "linkway_reader_batch_commit_duration_seconds",
			Help:    "Time to commit one batch of view changes and checkpoints (synced: live and checkpoints; unsynced: catch-up).",
			Buckets: prometheus.ExponentialBuckets(0.00005, 3, 10),
		}, []string{"synced"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_reader_restarts_total",
			Help: "Times the reader started again from its committed checkpoints, by cause.",
		}, []string{"cause"}),
		stateLoads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_reader_state_loads_total",
			Help: "Journey states read back from the view store (not in the in-memory cache).",
		}),
		stateCached: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linkway_reader_state_cache_journeys",
			Help: "Journey states held in memory.",
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.undecodable, m.applied, m.checkpoint, m.lagEvents, m.lagSeconds,
		m.commitSeconds, m.restarts, m.stateLoads, m.stateCached} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
