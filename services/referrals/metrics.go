package referrals

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the referrals service. Labels are small fixed sets: never a
// practice, journey or source id.
type metrics struct {
	// received counts referrals by channel (json, fhir, message) and
	// outcome (created, resent, refused).
	received *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "linkway_referrals_received_total",
			Help: "GP referrals received, by channel (json, fhir, message) and outcome (created, resent, refused).",
		}, []string{"channel", "outcome"}),
	}
	if err := reg.Register(m.received); err != nil {
		return nil, fmt.Errorf("referrals metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) count(channel string, created bool, err error) {
	outcome := "resent"
	switch {
	case err != nil:
		outcome = "refused"
	case created:
		outcome = "created"
	}
	m.received.WithLabelValues(channel, outcome).Inc()
}
