package service

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/snapwarden/snapwarden/internal/cycle"
	"github.com/snapwarden/snapwarden/internal/enforce"
	"github.com/snapwarden/snapwarden/internal/ledger"
	"github.com/snapwarden/snapwarden/internal/policy"
)

// metrics are the Prometheus series of the service, on their own registry.
type metrics struct {
	reg           *prometheus.Registry
	snapshots     *prometheus.GaugeVec
	bytes         *prometheus.GaugeVec
	oldest        prometheus.Gauge
	noticesSent   *prometheus.CounterVec
	noticesFailed *prometheus.CounterVec
	escalations   prometheus.Counter
	actions       *prometheus.CounterVec
	duration      prometheus.Histogram
	cycles        *prometheus.CounterVec
	vcErrors      *prometheus.CounterVec
	lastSuccess   prometheus.Gauge
	leader        prometheus.Gauge
	pending       prometheus.Gauge
}

// newMetrics registers the series; version is snapwarden's, for build_info.
func newMetrics(version string) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		snapshots: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapwarden_snapshots",
			Help: "Snapshots seen in the last cycle, by state and customer (\"\" for no known owner)."}, []string{"state", "customer"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapwarden_snapshot_bytes",
			Help: "Bytes held by snapshots in the last cycle, by state and customer."}, []string{"state", "customer"}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "snapwarden_oldest_snapshot_age_seconds",
			Help: "Age of the oldest snapshot that is neither exempt nor managed."}),
		noticesSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapwarden_notices_sent_total",
			Help: "Notices delivered, by kind (customer: a customer's digest; support: the support digest, email or webhook; action: a customer told of a consolidation)."}, []string{"kind"}),
		noticesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapwarden_notices_failed_total",
			Help: "Notice deliveries that failed (they are retried), by kind (customer, support, action)."}, []string{"kind"}),
		escalations: prometheus.NewCounter(prometheus.CounterOpts{Name: "snapwarden_escalations_total",
			Help: "Snapshots escalated to support."}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapwarden_consolidations_total",
			Help: "Consolidation attempts, by result (success, error, refused, running: still running when the cycle ended)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "snapwarden_cycle_duration_seconds",
			Help: "Duration of cycles.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)}),
		cycles: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapwarden_cycles_total",
			Help: "Cycles run, by result (ok, partial, failed)."}, []string{"result"}),
		vcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "snapwarden_vcenter_errors_total",
			Help: "Cycles in which a vCenter could not be collected, by vCenter."}, []string{"vcenter"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "snapwarden_last_success_timestamp_seconds",
			Help: "Unix time of the last cycle that completed without errors."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "snapwarden_leader",
			Help: "1 on the instance that leads (runs cycles), 0 on a standby."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "snapwarden_outbox_pending",
			Help: "Notices still owed to a recipient after the last cycle's delivery (retried at the next)."}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "snapwarden_build_info",
		Help: "Always 1; the labels say which snapwarden and Go build is running."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	// The zero series of every known label value exist from the start, so
	// rate() and increase() see the first event instead of a new series.
	for _, k := range []string{ledger.KindCustomer, ledger.KindSupport, ledger.KindAction} {
		m.noticesSent.WithLabelValues(k)
		m.noticesFailed.WithLabelValues(k)
	}
	for _, r := range []string{enforce.ResultSuccess, enforce.ResultError, enforce.ResultRefused, enforce.ResultRunning} {
		m.actions.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "partial", "failed"} {
		m.cycles.WithLabelValues(r)
	}
	m.reg.MustRegister(buildInfo, m.snapshots, m.bytes, m.oldest, m.noticesSent, m.noticesFailed, m.escalations, m.actions,
		m.duration, m.cycles, m.vcErrors, m.lastSuccess, m.leader, m.pending,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records one cycle's result.
func (m *metrics) observe(r *cycle.Result, err error) {
	status := r.Status()
	if err != nil {
		status = cycle.StatusFailed
	}
	if r != nil && r.Plan != nil {
		for _, e := range r.Plan.Errors {
			m.vcErrors.WithLabelValues(e.VCenter).Inc()
		}
	}
	if status == cycle.StatusFailed {
		// The gauges keep the last cycle that saw something: an empty
		// inventory from no vCenter is no news of zero snapshots.
		m.cycles.WithLabelValues(status).Inc()
		return
	}
	m.duration.Observe(r.Duration.Seconds())
	m.snapshots.Reset()
	m.bytes.Reset()
	var oldest float64
	for _, d := range r.Plan.Decisions {
		st := d.Verdict.State.String()
		m.snapshots.WithLabelValues(st, d.Customer).Inc()
		m.bytes.WithLabelValues(st, d.Customer).Add(float64(d.Snapshot.SizeBytes))
		if s := d.Verdict.State; s != policy.StateExempt && s != policy.StateManaged && d.Verdict.Age.Seconds() > oldest {
			oldest = d.Verdict.Age.Seconds()
		}
		if d.EscalateNow {
			m.escalations.Inc()
		}
	}
	m.oldest.Set(oldest)
	m.pending.Set(float64(r.Pending))
	for k, n := range r.Sent {
		m.noticesSent.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range r.Failed {
		m.noticesFailed.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range r.Actions {
		m.actions.WithLabelValues(k).Add(float64(n))
	}
	m.cycles.WithLabelValues(status).Inc()
	if status == cycle.StatusOK {
		m.lastSuccess.Set(float64(r.Started.Unix()))
	}
}
