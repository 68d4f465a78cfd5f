package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/queue"
)

// TestStopGraceTravelsWithTheTask: a worker started with --stop-grace 45s
// registers it, and the task the scheduler places on it has the deadline of
// the job's timeout, those 45 s and the margin, and carries the 45 s to the
// worker, which stops the workload with them. Before, the scheduler guessed
// 30 s whatever the worker's grace.
func TestStopGraceTravelsWithTheTask(t *testing.T) {
	c := newCluster(t)
	c.startWorker("graceful", "--stop-grace", "45s")
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sleep", "60"}, TimeoutSeconds: 120})
	c.waitFor(j.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	defer c.cancelAndWait(j.ID)

	tasks, err := asynq.NewInspectorFromRedisClient(c.redisClient()).ListActiveTasks(queue.WorkerQueue("graceful"))
	if err != nil || len(tasks) != 1 {
		t.Fatalf("active tasks of the worker: %v, %v; want the job's one", tasks, err)
	}
	var p struct {
		StopGrace time.Duration `json:"stop_grace_ns"`
	}
	if err := json.Unmarshal(tasks[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	want := 120*time.Second + 45*time.Second + queue.RunJobMargin
	if p.StopGrace != 45*time.Second || tasks[0].Timeout != want {
		t.Fatalf("task: stop grace %s, deadline %s; want the worker's 45s and %s", p.StopGrace, tasks[0].Timeout, want)
	}
}
