package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// Control is the metric set of a gateway process: its API and its control
// plane (the job service, placement, the callback notifier). Nil: off.
type Control struct {
	submitted  *prometheus.CounterVec
	finished   *prometheus.CounterVec
	recoveries *prometheus.CounterVec
	webhooks   *prometheus.CounterVec
	callbacks  *prometheus.CounterVec
}

// PendingReader reads the pending set's figures per priority
// (store.Store.PendingStats).
type PendingReader interface {
	PendingStats(ctx context.Context) ([]store.PendingStat, error)
}

var _ PendingReader = (*store.Store)(nil)

// NewControl registers the control plane's metrics on reg; nil reg is nil
// (off). pending, when not nil, is read at every scrape for the queue's
// depth and oldest wait per priority (see NewQueueCollector): every gateway
// reports the same Redis-wide figures, so aggregate them with max, not sum.
func NewControl(reg prometheus.Registerer, pending PendingReader) *Control {
	if reg == nil {
		return nil
	}
	if pending != nil {
		register(reg, NewQueueCollector(pending, 0))
	}
	return &Control{
		submitted: counterVec(reg, "jobs_submitted_total",
			"Jobs queued, by workspace: through the API, batches, webhook triggers, schedules and deployments (a replayed Idempotency-Key is not a new job).",
			"workspace"),
		finished: jobsFinished(reg),
		recoveries: counterVec(reg, "recoveries_total",
			"Running attempts of a lost or stopped worker that the scheduler requeued to run elsewhere, by reason (worker_lost, worker_stopped).",
			"reason"),
		webhooks: counterVec(reg, "webhook_deliveries_total",
			"Inbound webhook deliveries to triggers, by workspace and outcome (accepted, ignored, duplicate, rejected, bad_signature).",
			"workspace", "outcome"),
		callbacks: counterVec(reg, "callbacks_total",
			"Completion callbacks, by workspace and outcome (delivered, failed: every retry spent or the address refused).",
			"workspace", "outcome"),
	}
}

// JobSubmitted counts a job queued in workspace ws.
func (m *Control) JobSubmitted(ws string) {
	if m == nil {
		return
	}
	m.submitted.WithLabelValues(ws).Inc()
}

// JobFinished counts a job the control plane ended itself (canceled while
// queued); the worker counts the ones it ran.
func (m *Control) JobFinished(ws string, status api.Status) {
	if m == nil {
		return
	}
	m.finished.WithLabelValues(ws, string(status)).Inc()
}

// Recovered counts a running attempt requeued off a lost or stopped worker;
// reason is the attempt's reason code.
func (m *Control) Recovered(reason string) {
	if m == nil {
		return
	}
	m.recoveries.WithLabelValues(reason).Inc()
}

// WebhookDelivery counts an inbound delivery to a trigger of workspace ws.
func (m *Control) WebhookDelivery(ws, outcome string) {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues(ws, outcome).Inc()
}

// Callback counts a completion callback of a job of workspace ws that was
// delivered (err nil) or given up on.
func (m *Control) Callback(ws string, err error) {
	if m == nil {
		return
	}
	outcome := "delivered"
	if err != nil {
		outcome = "failed"
	}
	m.callbacks.WithLabelValues(ws, outcome).Inc()
}

// queueCollector reads the pending set at scrape time.
type queueCollector struct {
	pending PendingReader
	timeout time.Duration
	now     func() time.Time
	depth   *prometheus.Desc
	oldest  *prometheus.Desc
	errors  *prometheus.Desc
}

// NewQueueCollector is a collector that reads the pending set at each
// scrape, bounded by timeout (default 2s): jobgate_queue_depth and
// jobgate_queue_oldest_waiting_seconds per priority. When Redis does not
// answer in time the scrape still succeeds, without those two, and with
// jobgate_queue_read_errors 1.
func NewQueueCollector(pending PendingReader, timeout time.Duration) prometheus.Collector {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &queueCollector{pending: pending, timeout: timeout, now: time.Now,
		depth: prometheus.NewDesc(namespace+"_queue_depth",
			"Jobs waiting in the pending set to be placed, by priority (high, normal, low).", []string{"priority"}, nil),
		oldest: prometheus.NewDesc(namespace+"_queue_oldest_waiting_seconds",
			"How long the job first in line has waited (since it was queued or requeued), by priority; 0 when none waits.", []string{"priority"}, nil),
		errors: prometheus.NewDesc(namespace+"_queue_read_errors",
			"1 when this scrape could not read the pending set from Redis (the queue figures are missing then), else 0.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	ch <- c.errors
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	stats, err := c.pending.PendingStats(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.errors, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.GaugeValue, 0)
	now := c.now()
	for _, s := range stats {
		p := string(s.Priority)
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(s.Depth), p)
		age := 0.0
		if s.Depth > 0 && !s.Oldest.IsZero() {
			age = max(now.Sub(s.Oldest).Seconds(), 0)
		}
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age, p)
	}
}
