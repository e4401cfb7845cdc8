package vcs

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the vcs service. Labels are bounded: event names only, never
// organisation or referral ids.
type metrics struct {
	feedPublished *prometheus.CounterVec
	feedErrors    prometheus.Counter
	feedThrough   prometheus.Gauge
	commands      *prometheus.CounterVec
	sseClients    prometheus.Gauge
	signIns       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		feedPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_vcs_feed_published_total", Help: "Events published on the VCS organisations' NATS feed, by event."},
			[]string{"event"}),
		feedThrough: prometheus.NewGauge(prometheus.GaugeOpts{Name: "linkway_vcs_feed_published_through_sequence",
			Help: "The JOURNEYS sequence through which the VCS feed is published, as the replica publishing it last found its outbox empty."}),
		feedErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "linkway_vcs_feed_publish_errors_total", Help: "Failed publishes to the VCS feed (retried)."}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_vcs_commands_total", Help: "Commands from VCS organisations, by action and channel (api, web) and result."},
			[]string{"action", "channel", "result"}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "linkway_vcs_web_event_streams", Help: "Open server-sent event streams of the web inbox."}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_vcs_web_sign_ins_total", Help: "Web inbox sign-in attempts by result (ok, unknown_key, wrong_kind, throttled)."},
			[]string{"result"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.feedPublished, m.feedErrors, m.feedThrough, m.commands, m.sseClients, m.signIns} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("vcs metrics: %w", err)
		}
	}
	return m, nil
}
