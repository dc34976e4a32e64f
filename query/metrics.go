package query

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	reg      prometheus.Registerer
	duration *prometheus.HistogramVec
	rows     *prometheus.HistogramVec
	rowsTot  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_query_duration_seconds",
			Help:    "Time to answer one query page or stream, by operation (query, stream) and driver (postings, timestamp, scan).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"op", "driver"}),
		rows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ledger_query_rows_scanned",
			Help:    "Index rows and entries one query read, matching or not.",
			Buckets: prometheus.ExponentialBuckets(10, 4, 10),
		}, []string{"op", "driver"}),
		rowsTot: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ledger_query_rows_scanned_total",
			Help: "Index rows and entries read by queries, matching or not.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range []prometheus.Collector{m.duration, m.rows, m.rowsTot} {
		if err := reg.Register(c); err != nil {
			for _, c := range []prometheus.Collector{m.duration, m.rows, m.rowsTot}[:i] {
				reg.Unregister(c)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(op string, driver int, d time.Duration, scanned int64) {
	dn := driverNames[driver]
	m.duration.WithLabelValues(op, dn).Observe(d.Seconds())
	m.rows.WithLabelValues(op, dn).Observe(float64(scanned))
	m.rowsTot.Add(float64(scanned))
}

func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	m.reg.Unregister(m.duration)
	m.reg.Unregister(m.rows)
	m.reg.Unregister(m.rowsTot)
}
