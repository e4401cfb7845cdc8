package journal

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appends       *prometheus.CounterVec
	appendSeconds prometheus.Histogram
	conflicts     prometheus.Counter
	commands      *prometheus.CounterVec
	batches       *prometheus.CounterVec
	batchSize     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_appends_total",
			Help: "Journey events appended to the log, by event type and result (ok, conflict, error).",
		}, []string{"event", "result"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linkway_append_duration_seconds",
			Help:    "Time to publish one plain append or one atomic batch, acknowledgement included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_append_conflicts_total",
			Help: "Appends refused because the journey had moved on (optimistic-concurrency conflicts).",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_commands_total",
			Help: "Journey commands, by command and result (ok, unchanged, refused, replayed, conflict, error).",
		}, []string{"command", "result"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_append_publishes_total",
			Help: "Publishes of the group committer, by mode (batch: one atomic batch; plain: one message) and result (ok, conflict, error, failed: a batch published again one by one).",
		}, []string{"mode", "result"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "linkway_append_batch_messages",
			Help:    "Messages in one atomic batch of the group committer.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11),
		}),
	}
	for _, c := range []prometheus.Collector{m.appends, m.appendSeconds, m.conflicts, m.commands, m.batches, m.batchSize} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
