package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// text is reg's scrape in Prometheus's text format.
func text(t *testing.T, g prometheus.Gatherer) []byte {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// A nil set is "metrics off": every method is safe to call and does
// nothing.
func TestNilSetsAreOff(t *testing.T) {
	var c *metrics.Control
	c.JobSubmitted("ws")
	c.JobFinished("ws", api.StatusCanceled)
	c.Recovered(api.ReasonWorkerLost)
	c.WebhookDelivery("ws", "accepted")
	c.Callback("ws", nil)
	var w *metrics.Worker
	w.AttemptStarted(&api.Job{Attempt: 1, CreatedAt: time.Now()}, time.Now())
	now := time.Now()
	w.AttemptEnded("ws", false, api.StatusSucceeded, "", &now, now)
	w.BatchRows(metrics.BatchKindBatch, 1, 1)
	w.WatchCapacity(func() metrics.Capacity { t.Fatal("read"); return metrics.Capacity{} })
	var s *metrics.Scoring
	s.Request("ws", "iris", 1, 200, time.Millisecond)
	if metrics.NewControl(nil, nil) != nil || metrics.NewWorker(nil) != nil || metrics.NewScoring(nil) != nil {
		t.Error("a set made without a registerer is not nil (off)")
	}
}

type pendingFunc func(ctx context.Context) ([]store.PendingStat, error)

func (f pendingFunc) PendingStats(ctx context.Context) ([]store.PendingStat, error) { return f(ctx) }

// Every set of one process shares a registry: dev's control plane and
// worker both count ended jobs into one series, and what they define passes
// the linter.
func TestSetsShareARegistry(t *testing.T) {
	reg := metrics.NewRegistry()
	oldest := time.Now().Add(-90 * time.Second)
	c := metrics.NewControl(reg, pendingFunc(func(context.Context) ([]store.PendingStat, error) {
		return []store.PendingStat{{Priority: api.PriorityHigh}, {Priority: api.PriorityNormal, Depth: 7, Oldest: oldest}, {Priority: api.PriorityLow}}, nil
	}))
	w := metrics.NewWorker(reg)
	w2 := metrics.NewWorker(reg) // a second worker in the process: the same series
	sc := metrics.NewScoring(reg)

	c.JobSubmitted("team-a")
	c.JobSubmitted("team-a")
	c.JobFinished("team-a", api.StatusCanceled)
	c.Recovered(api.ReasonWorkerLost)
	c.WebhookDelivery("team-a", store.OutcomeAccepted)
	c.Callback("team-a", errors.New("refused"))
	started := time.Now().Add(-3 * time.Second)
	w.AttemptStarted(&api.Job{Attempt: 1, CreatedAt: started.Add(-20 * time.Millisecond), Spec: api.JobSpec{Priority: api.PriorityHigh}}, started)
	w.AttemptStarted(&api.Job{Attempt: 2, CreatedAt: started.Add(-time.Hour)}, started) // a retry is no dispatch
	w.AttemptEnded("team-a", false, api.StatusSucceeded, "", &started, time.Now())
	w2.AttemptEnded("team-a", false, api.StatusCanceled, api.ReasonCanceled, nil, time.Now())
	w.AttemptEnded("team-a", true, api.StatusFailed, api.ReasonExitCode, &started, time.Now())
	w.AttemptEnded("team-a", true, api.StatusFailed, api.ReasonPreempted, &started, time.Now())
	w.AttemptEnded("team-a", true, api.StatusFailed, api.ReasonWorkerStopped, &started, time.Now())
	w.BatchRows(metrics.BatchKindBatchScore, 9, 1)
	w.WatchCapacity(func() metrics.Capacity { return metrics.Capacity{Slots: 4, SlotsInUse: 1, GPUs: 2, GPUsInUse: 2} })
	sc.Request("team-a", "iris", 2, 200, 3*time.Millisecond)
	sc.Request("team-a", "iris", 0, 503, time.Second)

	scrape := text(t, reg)
	testenv.CheckMetrics(t, scrape)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jobgate_jobs_submitted_total", []string{"workspace", "team-a"}, 2},
		{"jobgate_jobs_finished_total", []string{"workspace", "team-a", "status", "canceled"}, 2},
		{"jobgate_jobs_finished_total", []string{"workspace", "team-a", "status", "succeeded"}, 1},
		{"jobgate_recoveries_total", []string{"reason", api.ReasonWorkerLost}, 1},
		{"jobgate_webhook_deliveries_total", []string{"workspace", "team-a", "outcome", "accepted"}, 1},
		{"jobgate_callbacks_total", []string{"workspace", "team-a", "outcome", "failed"}, 1},
		{"jobgate_dispatch_seconds", []string{"priority", "high"}, 1},
		{"jobgate_dispatch_seconds", []string{"priority", "normal"}, -1},
		{"jobgate_job_duration_seconds", []string{"status", "succeeded"}, 1},
		{"jobgate_job_duration_seconds", []string{"status", "requeued"}, 3},
		{"jobgate_job_duration_seconds", []string{"status", "canceled"}, -1}, // it never started
		{"jobgate_job_retries_total", []string{"workspace", "team-a"}, 1},
		{"jobgate_preemptions_total", []string{"workspace", "team-a"}, 1},
		{"jobgate_batch_rows_total", []string{"kind", "batch_score", "outcome", "ok"}, 9},
		{"jobgate_batch_rows_total", []string{"kind", "batch_score", "outcome", "failed"}, 1},
		{"jobgate_worker_slots", nil, 4},
		{"jobgate_worker_slots_in_use", nil, 1},
		{"jobgate_worker_gpus", nil, 2},
		{"jobgate_worker_gpus_in_use", nil, 2},
		{"jobgate_scoring_requests_total", []string{"workspace", "team-a", "deployment", "iris", "version", "2", "code", "200"}, 1},
		{"jobgate_scoring_requests_total", []string{"workspace", "team-a", "deployment", "iris", "version", "", "code", "503"}, 1},
		{"jobgate_scoring_request_seconds", []string{"workspace", "team-a", "deployment", "iris", "version", "2"}, 1},
		{"jobgate_queue_depth", []string{"priority", "normal"}, 7},
		{"jobgate_queue_depth", []string{"priority", "low"}, 0},
		{"jobgate_queue_oldest_waiting_seconds", []string{"priority", "high"}, 0},
		{"jobgate_queue_read_errors", nil, 0},
	} {
		if got := testenv.MetricValue(t, scrape, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if age := testenv.MetricValue(t, scrape, "jobgate_queue_oldest_waiting_seconds", "priority", "normal"); age < 90 || age > 3600 {
		t.Errorf("oldest normal job waited %vs, want about 90s", age)
	}
	for _, fam := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if testenv.MetricValue(t, scrape, fam) < 0 {
			t.Errorf("the registry lacks %s", fam)
		}
	}
}

// A scrape while Redis does not answer succeeds without the queue figures,
// saying so, within the collector's timeout.
func TestQueueCollectorBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewQueueCollector(pendingFunc(func(ctx context.Context) ([]store.PendingStat, error) {
		<-ctx.Done() // a Redis that does not answer
		return nil, ctx.Err()
	}), 50*time.Millisecond))
	scrape := text(t, reg)
	if got := testenv.MetricValue(t, scrape, "jobgate_queue_read_errors"); got != 1 {
		t.Errorf("jobgate_queue_read_errors = %v, want 1", got)
	}
	if strings.Contains(string(scrape), "jobgate_queue_depth") {
		t.Errorf("a failed read reported a depth:\n%s", scrape)
	}
}

// ServeListener serves GET /metrics until its context ends.
func TestServeListener(t *testing.T) {
	reg := metrics.NewRegistry()
	metrics.NewControl(reg, nil).JobSubmitted("default")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.ServeListener(ctx, ln, reg, nil) }()
	scrape := testenv.Scrape(t, "http://"+ln.Addr().String()+"/metrics", "")
	testenv.CheckMetrics(t, scrape)
	if got := testenv.MetricValue(t, scrape, "jobgate_jobs_submitted_total", "workspace", "default"); got != 1 {
		t.Errorf("jobgate_jobs_submitted_total = %v, want 1", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeListener: %v", err)
	}
}
