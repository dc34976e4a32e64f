package feed

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sink metrics, labelled by sink name.
type metrics struct {
	delivered    *prometheus.CounterVec
	failed       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	alerting     *prometheus.GaugeVec
	lag          []prometheus.Collector // per sink: lag events and seconds
}

func newMetrics(m *Manager) *metrics {
	mt := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_sink_delivered_total", Help: "Entries acknowledged by the sink's receiver.",
		}, []string{"sink"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_sink_failed_total", Help: "Entries in delivery attempts that failed (each retry counts again).",
		}, []string{"sink"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ledger_sink_dead_lettered_total", Help: "Entries the receiver rejected that went to the dead-letter file.",
		}, []string{"sink"}),
		alerting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ledger_sink_alerting", Help: "1 while the sink has failed for longer than its alertAfter.",
		}, []string{"sink"}),
	}
	for _, r := range m.runners {
		name := r.d.Name
		mt.delivered.WithLabelValues(name)
		mt.failed.WithLabelValues(name)
		mt.deadLettered.WithLabelValues(name)
		mt.alerting.WithLabelValues(name)
		mt.lag = append(mt.lag,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "ledger_sink_lag_events", Help: "Committed entries the sink has not yet acknowledged.",
				ConstLabels: prometheus.Labels{"sink": name},
			}, func() float64 { e, _ := r.lag(); return float64(e) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "ledger_sink_lag_seconds", Help: "Age of the oldest entry the sink has not yet acknowledged.",
				ConstLabels: prometheus.Labels{"sink": name},
			}, func() float64 { _, s := r.lag(); return s }),
		)
	}
	return mt
}

func (mt *metrics) all() []prometheus.Collector {
	return append([]prometheus.Collector{mt.delivered, mt.failed, mt.deadLettered, mt.alerting}, mt.lag...)
}

func (mt *metrics) register(reg prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range mt.all() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

func (mt *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range mt.all() {
		reg.Unregister(c)
	}
}
