// Package queue is the wire contract between the gateway and the workers: task
// type names, payloads, queue names, enqueue options and the wake-up channels.
// Both sides import it and never import each other.
//
// Placement works like this: the gateway's scheduler (one leader among the
// gateways) keeps queued jobs in its own pending set, picks a worker with a free
// slot, and enqueues a TypeRunJob task on that worker's own asynq queue
// (WorkerQueue). asynq then does delivery, leases and redelivery after a crash.
// Because asynq polls an empty queue, both sides also use Redis pub/sub wake-ups
// (Notify, Waker), so an idle worker starts a new job in milliseconds.
package queue

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// TypeRunJob runs one attempt of a job.
const TypeRunJob = "job:run"

// RunJobPayload names the job and the attempt a task is for. The job record in
// the store is the source of truth; a task whose attempt is no longer the job's
// current attempt is stale and is dropped.
type RunJobPayload struct {
	JobID   string `json:"job_id"`
	Attempt int    `json:"attempt"`
	// Placement numbers the scheduler's reservations of an attempt; a task of
	// an older placement (the job was handed back and placed again) is stale.
	Placement int64 `json:"placement"`
	// StopGrace is the time the workload gets between SIGTERM and SIGKILL
	// when it is stopped: the grace the placed-on worker registered, which
	// the task's deadline was computed with (RunJobDeadline), so the worker
	// stops the workload with exactly it. Zero (a task from a scheduler that
	// did not send it) leaves the worker's own.
	StopGrace time.Duration `json:"stop_grace_ns,omitempty"`
}

// RunJobMargin is what a task's deadline leaves past the job's timeout and
// stop grace, for the worker to record how the attempt ended.
const RunJobMargin = time.Minute

// RunJobDeadline is the deadline of a task whose job may run for jobTimeout
// and then be stopped with stopGrace: both, plus RunJobMargin.
func RunJobDeadline(jobTimeout, stopGrace time.Duration) time.Duration {
	return jobTimeout + stopGrace + RunJobMargin
}

// ServiceDeadline stands for the timeout of a service job (a deployment's
// replica), which has none and runs until it is stopped: the task of one is
// given RunJobDeadline(ServiceDeadline, stopGrace). A replica that outlives
// it is not stopped (the worker runs workloads on a context of their own);
// asynq delivers its task again and the worker, which holds the attempt
// already, lets the copy go.
const ServiceDeadline = 365 * 24 * time.Hour

// WorkerQueue is the asynq queue a worker consumes; only the scheduler enqueues on it.
func WorkerQueue(workerID string) string { return "worker:" + workerID }

// TaskID makes a task unique per placement of a job attempt, so enqueueing
// twice after a scheduler crash is harmless (asynq answers ErrTaskIDConflict).
func TaskID(p RunJobPayload) string { return fmt.Sprintf("%s-%d-%d", p.JobID, p.Attempt, p.Placement) }

// NewRunJobTask builds the task for one attempt. deadline bounds the handler:
// RunJobDeadline of the job's own timeout and p.StopGrace, never asynq's
// silent 30-minute default.
func NewRunJobTask(p RunJobPayload, deadline time.Duration) (*asynq.Task, error) {
	return NewRunJobTaskWithHeaders(p, deadline, nil)
}

// runJobOptions are the options of p's task (see NewRunJobTask).
func runJobOptions(p RunJobPayload, deadline time.Duration) []asynq.Option {
	return []asynq.Option{
		asynq.TaskID(TaskID(p)),
		asynq.Timeout(deadline),
		// asynq retries only infrastructure failures (Redis down mid-run); job
		// failures and max_retries are the scheduler's business.
		asynq.MaxRetry(10),
	}
}

// ParseRunJobPayload decodes a TypeRunJob payload.
func ParseRunJobPayload(b []byte) (RunJobPayload, error) {
	var p RunJobPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("decode run-job payload: %w", err)
	}
	if p.JobID == "" || p.Attempt < 1 {
		return p, fmt.Errorf("run-job payload: job_id and attempt are required")
	}
	return p, nil
}

// Wake-up channels (Redis pub/sub). A message carries no data: it only says
// "look again". Waiters also look on a timer, so a lost message costs latency,
// never a job.
const (
	// ChannelScheduler wakes the scheduler: a job was submitted, a slot freed up,
	// a worker joined.
	ChannelScheduler = "jobgate:wake:scheduler"
	// ChannelCancel carries the ID of a running job whose cancel was requested.
	ChannelCancel = "jobgate:cancel"
	// ChannelPreempt carries the ID of a running low-priority job the
	// scheduler wants stopped and requeued, to free its GPUs.
	ChannelPreempt = "jobgate:preempt"
	// ChannelDeploy wakes the deployment controller: a deployment was
	// created, changed or deleted, a replica's job ended, or a router saw
	// a request for a deployment scaled to zero.
	ChannelDeploy = "jobgate:wake:deploy"
	// ChannelRouting wakes the scoring routers: a replica became ready,
	// started draining or went away; they reload their routing table.
	ChannelRouting = "jobgate:wake:routing"
	// ChannelSweeps wakes the sweep controller: a child job recorded
	// metric points from its log, which a sweep's early termination rule
	// judges as they arrive.
	ChannelSweeps = "jobgate:wake:sweeps"
)

// WorkerChannel wakes one worker: a task was put on its queue.
func WorkerChannel(workerID string) string { return "jobgate:wake:worker:" + workerID }
