package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobgate/jobgate/api"
)

// Worker is the metric set of a worker. Nil: off.
type Worker struct {
	reg         prometheus.Registerer
	finished    *prometheus.CounterVec
	dispatch    *prometheus.HistogramVec
	duration    *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	preemptions *prometheus.CounterVec
	batchRows   *prometheus.CounterVec
}

// DispatchBuckets are jobgate_dispatch_seconds's: an idle system dispatches
// in milliseconds, a busy one in minutes.
var DispatchBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}

// DurationBuckets are jobgate_job_duration_seconds's: from a one-second
// job to a day of training.
var DurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400}

// NewWorker registers the worker's metrics on reg; nil reg is nil (off).
func NewWorker(reg prometheus.Registerer) *Worker {
	if reg == nil {
		return nil
	}
	return &Worker{
		reg:      reg,
		finished: jobsFinished(reg),
		dispatch: histogramVec(reg, "dispatch_seconds",
			"Time from a job's submit to the start of its first attempt on a worker, by priority.",
			DispatchBuckets, "priority"),
		duration: histogramVec(reg, "job_duration_seconds",
			"Run time of an attempt, from its start on the worker to its end, by how it ended (succeeded, failed, canceled, requeued).",
			DurationBuckets, "status"),
		retries: counterVec(reg, "job_retries_total",
			"Failed attempts that went back to the queue for another try (max_retries), by workspace.",
			"workspace"),
		preemptions: counterVec(reg, "preemptions_total",
			"Attempts stopped and requeued to give their GPUs to a higher-priority job, by workspace.",
			"workspace"),
		batchRows: counterVec(reg, "batch_rows_total",
			"Rows scored by batch jobs (kind batch: POST /v1/deployments/{name}/batch; batch_score: kind batch-score jobs), by outcome (ok, failed).",
			"kind", "outcome"),
	}
}

// AttemptStarted observes the dispatch latency of job's attempt, started at
// at: for the first attempt only, from the job's creation (a requeued
// attempt's wait is not a dispatch).
func (m *Worker) AttemptStarted(job *api.Job, at time.Time) {
	if m == nil || job.Attempt != 1 || job.CreatedAt.IsZero() {
		return
	}
	p := job.Spec.Priority
	if p == "" {
		p = api.PriorityNormal
	}
	m.dispatch.WithLabelValues(string(p)).Observe(max(at.Sub(job.CreatedAt).Seconds(), 0))
}

// AttemptEnded counts how an attempt of a job of workspace ws ended, once
// recorded: status is the attempt's (its job's final status when not
// requeued), reasonCode its reason's code, startedAt when it started (nil:
// it never did), at when it ended.
func (m *Worker) AttemptEnded(ws string, requeued bool, status api.Status, reasonCode string, startedAt *time.Time, at time.Time) {
	if m == nil {
		return
	}
	label := string(status)
	if requeued {
		label = "requeued"
		switch reasonCode {
		case api.ReasonPreempted:
			m.preemptions.WithLabelValues(ws).Inc()
		case api.ReasonWorkerStopped, api.ReasonWorkerLost:
			// Not the job's failure: handed back, not retried.
		default:
			m.retries.WithLabelValues(ws).Inc()
		}
	} else {
		m.finished.WithLabelValues(ws, string(status)).Inc()
	}
	if startedAt != nil {
		m.duration.WithLabelValues(label).Observe(max(at.Sub(*startedAt).Seconds(), 0))
	}
}

// Batch row kinds.
const (
	BatchKindBatch      = "batch"
	BatchKindBatchScore = "batch_score"
)

// BatchRows counts rows a batch job of kind answered: ok answered, failed
// answered with an error.
func (m *Worker) BatchRows(kind string, ok, failed int) {
	if m == nil {
		return
	}
	if ok > 0 {
		m.batchRows.WithLabelValues(kind, "ok").Add(float64(ok))
	}
	if failed > 0 {
		m.batchRows.WithLabelValues(kind, "failed").Add(float64(failed))
	}
}

// Capacity is what a worker has and uses now.
type Capacity struct {
	Slots, SlotsInUse int
	GPUs, GPUsInUse   int
}

// WatchCapacity reports read's figures at every scrape as the gauges
// jobgate_worker_slots, jobgate_worker_slots_in_use, jobgate_worker_gpus
// and jobgate_worker_gpus_in_use. read must be quick and safe to call from
// any goroutine. One worker per registry: a second one's is not reported.
func (m *Worker) WatchCapacity(read func() Capacity) {
	if m == nil {
		return
	}
	_ = m.reg.Register(&capacityCollector{read: read,
		slots:     prometheus.NewDesc(namespace+"_worker_slots", "Jobs this worker runs at once (--slots).", nil, nil),
		slotsUsed: prometheus.NewDesc(namespace+"_worker_slots_in_use", "Attempts this worker holds now (preparing, running or stopping).", nil, nil),
		gpus:      prometheus.NewDesc(namespace+"_worker_gpus", "GPUs this worker has.", nil, nil),
		gpusUsed:  prometheus.NewDesc(namespace+"_worker_gpus_in_use", "GPUs of this worker given to running attempts now.", nil, nil),
	})
}

type capacityCollector struct {
	read                             func() Capacity
	slots, slotsUsed, gpus, gpusUsed *prometheus.Desc
}

func (c *capacityCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.slots
	ch <- c.slotsUsed
	ch <- c.gpus
	ch <- c.gpusUsed
}

func (c *capacityCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.read()
	ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(v.Slots))
	ch <- prometheus.MustNewConstMetric(c.slotsUsed, prometheus.GaugeValue, float64(v.SlotsInUse))
	ch <- prometheus.MustNewConstMetric(c.gpus, prometheus.GaugeValue, float64(v.GPUs))
	ch <- prometheus.MustNewConstMetric(c.gpusUsed, prometheus.GaugeValue, float64(v.GPUsInUse))
}
