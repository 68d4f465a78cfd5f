package main

import (
	"context"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestClientReadsAttemptsNotificationsAndWorkers: the Go client reads, typed
// with the api types the gateway serves, how a job's attempts ended, the
// delivery attempts of its callback and the registered workers, from a real
// gateway and worker.
func TestClientReadsAttemptsNotificationsAndWorkers(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	ctx := context.Background()
	flaky := newReceiver(t, 1)

	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "exit 3"}, MaxRetries: 1,
		Notify: &api.Notify{URL: flaky.srv.URL, Secret: flaky.secret, Events: []string{"job.failed"}}})
	if end := c.waitEnded(j.ID); end.Status != api.StatusFailed || end.Attempt != 2 {
		t.Fatalf("job %s attempt %d, want failed in attempt 2", end.Status, end.Attempt)
	}

	attempts, err := c.api.Attempts(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 2 {
		t.Fatalf("attempts = %+v, want 2", attempts)
	}
	for i, a := range attempts {
		if a.Attempt != i+1 || a.Worker != "w1" || a.Status != api.StatusFailed || a.ExitCode == nil || *a.ExitCode != 3 ||
			a.ReasonCode != api.ReasonExitCode || a.StartedAt == nil || a.FinishedAt.IsZero() {
			t.Errorf("attempt %d = %+v; want failed with exit code 3 on w1", i+1, a)
		}
	}

	var notes []api.Notification
	testenv.Eventually(t, 30*time.Second, func() bool {
		notes, err = c.api.Notifications(ctx, j.ID)
		return err == nil && len(notes) == 2
	}, "job shows callback attempts %+v (%v), want 2", notes, err)
	if notes[0].StatusCode != 500 || notes[1].StatusCode != 200 || notes[1].Type != "job.failed" || notes[1].At.IsZero() {
		t.Fatalf("callback attempts = %+v; want 500 then 200, job.failed", notes)
	}
	d, err := c.api.Detail(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != j.ID || d.QueuePosition != nil || d.Spec.Notify == nil || d.Spec.Notify.Secret != "***" {
		t.Fatalf("detail = %+v; want the ended job, its callback secret hidden", d)
	}

	workers, err := c.api.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(workers) != 1 || workers[0].ID != "w1" || workers[0].State != "up" || workers[0].Status != "up" ||
		workers[0].Slots == 0 || workers[0].LastHeartbeat.IsZero() || !workers[0].AllowHostProcess {
		t.Fatalf("workers = %+v; want w1, up, with its slots and heartbeat", workers)
	}
}
