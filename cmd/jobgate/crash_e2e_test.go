package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// startWorkerProcess runs `jobgate worker` as a real child process (the test
// binary re-executed, see TestMain), with extra flags after the usual ones.
func (c *cluster) startWorkerProcess(id, spool, ckpt string, extra ...string) *exec.Cmd {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"worker", "--id", id, "--redis-url", c.redisAt(), "--artifacts-dir", c.artifacts,
		"--podman-url", c.podman, "--network", "host", "--allow-host-process", "--stop-grace", "2s",
		"--spool-dir", spool, "--checkpoint-dir", ckpt, "--secrets-key-file", c.secretsKey, "--log-level", "warn"}, extra...)...)
	cmd.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	testenv.Eventually(c.t, 20*time.Second, func() bool { return c.workerState(id) == "up" }, "worker process %s did not register", id)
	return cmd
}

// TestWorkerKilledMidJobLosesNothing kills a worker process with SIGKILL while
// its job runs, starts it again under the same ID, and checks that the job is
// run again as a new attempt and ends exactly once.
func TestWorkerKilledMidJobLosesNothing(t *testing.T) {
	c := newCluster(t)
	spool, ckpt := t.TempDir(), t.TempDir()
	w := c.startWorkerProcess("crashy", spool, ckpt)

	// Attempt 1 runs until killed; attempt 2 finishes.
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`echo "attempt $JOBGATE_ATTEMPT"; if [ "$JOBGATE_ATTEMPT" = 1 ]; then while true; do sleep 0.1; done; fi; echo done`}})
	c.waitFor(j.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(c.logs(j.ID), "attempt 1") }, "job never printed")

	if err := w.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.Wait()
	if got := c.get(j.ID); got.Status != api.StatusRunning {
		t.Fatalf("after the worker died the job is %s; the record should still say running until recovery", got.Status)
	}

	c.startWorkerProcess("crashy", spool, ckpt)
	done := c.waitEnded(j.ID)
	if done.Status != api.StatusSucceeded || done.Attempt != 2 {
		t.Fatalf("job after the crash: %s (%s) attempt %d; want succeeded on attempt 2", done.Status, done.Reason, done.Attempt)
	}
	h := c.history(j.ID)
	if len(h.Attempts) != 2 || !strings.HasPrefix(h.Attempts[0].Reason, api.ReasonWorkerLost) || h.Attempts[1].Status != api.StatusSucceeded {
		t.Fatalf("history: %+v; want attempt 1 worker_lost, attempt 2 succeeded", h.Attempts)
	}
	if logs := c.logs(j.ID); !strings.Contains(logs, "attempt 2\ndone\n") {
		t.Fatalf("logs: %q", logs)
	}
}

// TestSameWorkerIDTwiceIsRefused starts a second `jobgate worker` process
// under the ID of one that runs a job: the second refuses to start, saying
// why, and the first runs its job to the end as attempt 1, untouched.
func TestSameWorkerIDTwiceIsRefused(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	c.startWorkerProcess("twin", t.TempDir(), t.TempDir())
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`echo "run $JOBGATE_ATTEMPT" >> ` + dir + `/runs; while [ ! -e ` + dir + `/go ]; do sleep 0.05; done; echo done`}})
	c.waitFor(j.ID, 30*time.Second, "started on twin", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker == "twin" })

	var stderr bytes.Buffer
	second := exec.Command(os.Args[0], "worker", "--id", "twin", "--redis-url", c.redisAt(), "--artifacts-dir", c.artifacts,
		"--podman-url", c.podman, "--network", "host", "--allow-host-process", "--spool-dir", t.TempDir(),
		"--checkpoint-dir", t.TempDir(), "--secrets-key-file", c.secretsKey, "--log-level", "warn")
	second.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1")
	second.Stderr = &stderr
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(stderr.String(), "worker ID twin is in use by a live worker on host") {
			t.Fatalf("second worker under the same ID: %v, stderr:\n%s\nwant it refused, saying why", err, stderr.String())
		}
		for _, line := range strings.Split(stderr.String(), "\n") {
			if strings.Contains(line, "in use") {
				t.Logf("second worker refused: %s", line)
			}
		}
	case <-time.After(30 * time.Second):
		second.Process.Kill()
		<-exited
		t.Fatalf("a second worker under the ID of a live one was still running after 30s; stderr:\n%s", stderr.String())
	}

	if got := c.get(j.ID); got.Status != api.StatusRunning || got.Attempt != 1 || got.Worker != "twin" {
		t.Fatalf("after the second worker: %s (%s) attempt %d on %q; want still running attempt 1 on twin", got.Status, got.Reason, got.Attempt, got.Worker)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := c.waitEnded(j.ID)
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if done.Status != api.StatusSucceeded || done.Attempt != 1 || string(runs) != "run 1\n" {
		t.Fatalf("job: %s (%s) attempt %d, runs %q; want succeeded on attempt 1, run once", done.Status, done.Reason, done.Attempt, runs)
	}
}
