package views

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Metric values the tests read.

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

func (m *ReaderMetrics) StateCachedForTest() float64 { return value(m.stateCached) }
func (m *ReaderMetrics) StateLoadsForTest() float64  { return value(m.stateLoads) }
func (m *ReaderMetrics) UndecodableForTest() float64 { return value(m.undecodable) }

func (m *ReaderMetrics) RestartsForTest() float64 { return value(m.restarts.WithLabelValues("log")) }

// CommitsForTest counts the slices committed, synced or not.
func (m *ReaderMetrics) CommitsForTest() uint64 {
	var n uint64
	for _, synced := range []string{"true", "false"} {
		var d dto.Metric
		if err := m.commitSeconds.WithLabelValues(synced).(prometheus.Histogram).Write(&d); err == nil {
			n += d.Histogram.GetSampleCount()
		}
	}
	return n
}
