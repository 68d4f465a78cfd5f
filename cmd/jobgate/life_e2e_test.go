package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/domain/entities"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/worker"
)

// TestWorkerSIGTERMHandsBackItsAttempts stops a worker process with SIGTERM
// while a job runs on it: the worker is given nothing new while it stops,
// stops the workload and hands the attempt back before it leaves, and the
// job runs again on the other worker.
func TestWorkerSIGTERMHandsBackItsAttempts(t *testing.T) {
	c := newCluster(t)
	dir := t.TempDir()
	// More slots than w2: left to itself the scheduler would prefer w1.
	w1 := c.startWorkerProcess("w1", t.TempDir(), t.TempDir(), "--shutdown-timeout", "15s", "--slots", "8")
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`echo $$ > ` + dir + `/pid.$JOBGATE_ATTEMPT; exec sleep 30`}})
	c.waitFor(j.ID, 30*time.Second, "started on w1", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker == "w1" })
	pid1 := readPID(t, filepath.Join(dir, "pid.1"))
	c.startWorker("w2")

	sent := time.Now()
	if err := w1.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { w1.Wait(); close(exited) }()
	testenv.Eventually(t, 10*time.Second, func() bool { return c.workerState("w1") == "stopping" }, "w1 never said it is stopping")
	during := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "exec sleep 30"}})
	c.waitFor(during.ID, 30*time.Second, "started on w2", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker == "w2" })
	if a := c.get(j.ID); a.Status != api.StatusRunning || a.Worker != "w1" || a.Attempt != 1 {
		t.Fatalf("the job submitted while w1 was stopping started only once w1 had drained (first job: %s on %q, attempt %d)", a.Status, a.Worker, a.Attempt)
	}
	c.waitFor(j.ID, 60*time.Second, "ran again on w2", func(j *api.Job) bool {
		return j.Status == api.StatusRunning && j.Worker == "w2" && j.Attempt == 2
	})
	t.Logf("the job runs on w2 %s after w1 got SIGTERM", time.Since(sent).Round(100*time.Millisecond))
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("w1 did not exit within 60s of SIGTERM")
	}
	h := c.history(j.ID)
	if len(h.Attempts) != 1 || h.Attempts[0].Worker != "w1" || !strings.HasPrefix(h.Attempts[0].Reason, api.ReasonWorkerStopped) {
		t.Fatalf("history: %+v; want attempt 1 on w1 ended %s", h.Attempts, api.ReasonWorkerStopped)
	}
	// Attempt 1's workload was stopped, not left behind.
	testenv.Eventually(t, 20*time.Second, func() bool { return errors.Is(syscall.Kill(pid1, 0), syscall.ESRCH) },
		"attempt 1's process %d still exists after w1 left", pid1)
	c.cancelAndWait(j.ID)
	c.cancelAndWait(during.ID)
}

// readPID waits for a job to write its process ID to path and returns it.
func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testenv.Eventually(t, 20*time.Second, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	}, "no process ID in %s", path)
	return pid
}

// cancelAndWait cancels job id and waits until it ended.
func (c *cluster) cancelAndWait(id string) {
	c.t.Helper()
	if code := c.do("POST", "/v1/jobs/"+id+"/cancel", "", nil); code != 200 && code != 202 {
		c.t.Fatalf("cancel %s: %d", id, code)
	}
	c.waitEnded(id)
}

// TestRedisRestartNeitherRerunsNorStalls stops Redis while attempts run on
// two worker processes, lets those attempts end while it is down, and
// restarts it on its AOF: no attempt runs twice, a submit during the outage
// is told to come back (503, Retry-After), and work goes on at once when
// Redis is back. (The 200 jobs on 2 workers of 4 slots, scaled down
// to 24 jobs on 2 workers of 3 slots.)
func TestRedisRestartNeitherRerunsNorStalls(t *testing.T) {
	redisRestart(t, newClusterTB(t), 3*time.Second) // restarts Redis: one server in every mode
}

// TestLongRedisOutageRerunsNothing is the same with Redis away for longer
// than the gateway waits for a silent worker (--worker-lost-after, shortened
// to 5 s to keep the test short, with an 8 s outage): the workers could not
// heartbeat either, so none is taken for lost when Redis is back, and no
// attempt runs twice.
func TestLongRedisOutageRerunsNothing(t *testing.T) {
	c := newClusterTB(t) // restarts Redis: one server in every mode
	c.stopGateway()
	c.gwFlags = []string{"--worker-lost-after", "5s"}
	c.startGateway()
	redisRestart(t, c, 8*time.Second)
}

// redisRestart is TestRedisRestartNeitherRerunsNorStalls on cluster c with
// Redis away for outage.
func redisRestart(t *testing.T, c *cluster, outage time.Duration) {
	spools := []string{t.TempDir(), t.TempDir()}
	c.startWorkerProcess("r1", spools[0], t.TempDir(), "--slots", "3")
	c.startWorkerProcess("r2", spools[1], t.TempDir(), "--slots", "3")
	ours := map[string]bool{}
	var ids []string
	for range 24 {
		j := c.submit(api.JobSpec{Command: toolbox("sleep", "1")})
		ours[j.ID] = true
		ids = append(ids, j.ID)
	}
	// Redis goes down while attempts run.
	var inflight []string
	testenv.Eventually(t, 60*time.Second, func() bool {
		inflight = c.runningContainers(ours)
		return len(inflight) >= 4
	}, "fewer than 4 attempts ever ran at once")
	port := redisPort(t, c.redis.URL)
	c.redis.Stop()
	stopped := time.Now()
	t.Logf("redis stopped with %d attempts in flight", len(inflight))

	req, _ := http.NewRequest("POST", c.gwURL+"/v1/jobs", strings.NewReader(`{"image":"`+testenv.ExampleImage+`","command":["/bin/toolbox","echo"]}`))
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body api.ErrorBody
	decodeJSON(t, resp, &body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || body.Error.Code != "unavailable" {
		t.Errorf("submit while Redis is down: %d %+v, Retry-After %q; want 503 unavailable with Retry-After",
			resp.StatusCode, body.Error, resp.Header.Get("Retry-After"))
	}
	// The attempts in flight end while Redis is down: their workloads exit
	// and the workers are done with their spooled logs, which comes right
	// before recording how they ended.
	testenv.Eventually(t, 30*time.Second, func() bool {
		for _, id := range inflight {
			for _, dir := range spools {
				if m, _ := filepath.Glob(filepath.Join(dir, id+"-*.log")); len(m) > 0 {
					return false
				}
			}
		}
		return true
	}, "the attempts in flight did not end while Redis was down")
	// The outage itself (the scenario: Redis down 3 s): this waits
	// for nothing, it is how long Redis stays away.
	time.Sleep(outage)

	c.redis = testenv.RedisAt(t, c.redisDir, port)
	back := time.Now()
	t.Logf("redis was away %s", back.Sub(stopped).Round(100*time.Millisecond))
	var resumed time.Duration
	testenv.Eventually(t, 30*time.Second, func() bool {
		list, err := c.api.List(context.Background(), client.ListOptions{Limit: 100})
		if err != nil {
			return false
		}
		for _, j := range list.Jobs {
			if j.StartedAt != nil && j.StartedAt.After(back) {
				resumed = time.Since(back)
				return true
			}
		}
		return false
	}, "no attempt started within 30s of Redis coming back")
	t.Logf("first attempt started %s after Redis was back", resumed.Round(100*time.Millisecond))

	twice := 0
	for _, id := range ids {
		j := c.waitFor(id, 120*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
		if h := c.history(id); j.Status != api.StatusSucceeded || j.Attempt != 1 || len(h.Attempts) != 1 {
			twice++
			t.Errorf("job %s: %s (%s) attempt %d, history %+v; want it succeeded on its one attempt", id, j.Status, j.Reason, j.Attempt, h.Attempts)
		}
	}
	t.Logf("%d of %d jobs ran more than once", twice, len(ids))
}

// TestWorkerKilledWhileRedisIsDownKeepsTheEnd: an attempt ends while Redis
// is down, and its worker process is killed before Redis comes back. The
// worker kept how the attempt ended on disk; started again, it records that
// instead of running the job again.
func TestWorkerKilledWhileRedisIsDownKeepsTheEnd(t *testing.T) {
	c := newClusterTB(t) // restarts Redis: one server in every mode
	spool, ckpt, dir := t.TempDir(), t.TempDir(), t.TempDir()
	w := c.startWorkerProcess("keeper", spool, ckpt)
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`echo "run $JOBGATE_ATTEMPT" >> ` + dir + `/runs; while [ ! -e ` + dir + `/go ]; do sleep 0.05; done; echo done`}})
	c.waitFor(j.ID, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	port := redisPort(t, c.redis.URL)
	c.redis.Stop()
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(spool, "ends-keeper", j.ID+"-1.json"))
		return len(m) == 1
	}, "the worker kept no record of how the attempt ended")
	if err := w.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	w.Wait()
	c.redis = testenv.RedisAt(t, c.redisDir, port)
	c.startWorkerProcess("keeper", spool, ckpt)
	done := c.waitEnded(j.ID)
	runs, _ := os.ReadFile(filepath.Join(dir, "runs"))
	if done.Status != api.StatusSucceeded || done.Attempt != 1 || string(runs) != "run 1\n" {
		t.Fatalf("job: %s (%s) attempt %d, runs %q; want succeeded on attempt 1, run once", done.Status, done.Reason, done.Attempt, runs)
	}
}

// runningContainers lists the running containers of the jobs in ours by
// their job ID.
func (c *cluster) runningContainers(ours map[string]bool) []string {
	c.t.Helper()
	var out []string
	for _, ct := range c.containers(worker.LabelJob) {
		if ours[ct.Labels[worker.LabelJob]] && ct.State == "running" {
			out = append(out, ct.Labels[worker.LabelJob])
		}
	}
	return out
}

// containers lists every container that has label, running or not.
func (c *cluster) containers(label string) []entities.ListContainer {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := bindings.NewConnection(ctx, c.podman)
	if err != nil {
		c.t.Fatalf("connect to podman: %v", err)
	}
	list, err := containers.List(conn, new(containers.ListOptions).WithAll(true).WithFilters(map[string][]string{"label": {label}}))
	if err != nil {
		c.t.Fatalf("list containers: %v", err)
	}
	return list
}

func redisPort(t *testing.T, redisURL string) int {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("redis url %s: %v", redisURL, err)
	}
	return port
}

func decodeJSON(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Errorf("%s %s: %d: body is not JSON: %v", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, err)
	}
}

// TestKilledWorkersContainersAreReaped kills a worker process with SIGKILL
// while its container jobs run and does not restart it: once the scheduler
// has moved the jobs on, another worker on the same podman removes the
// orphaned containers, and the job's history says attempt 1 may have run
// on until then. Then that worker is killed too and comes back after the
// scheduler moved the jobs on again: at start it removes its own orphans.
func TestKilledWorkersContainersAreReaped(t *testing.T) {
	c := newCluster(t)
	reap := []string{"--slots", "2", "--reap-every", "1s"}
	k1 := c.startWorkerProcess("k1", t.TempDir(), t.TempDir(), reap...)
	ours := map[string]bool{}
	var ids []string
	for range 2 {
		j := c.submit(api.JobSpec{Command: toolbox("sleep", "120")})
		ours[j.ID] = true
		ids = append(ids, j.ID)
	}
	t.Cleanup(func() { c.removeContainers(ours) })
	for _, id := range ids {
		c.waitFor(id, 30*time.Second, "started on k1", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker == "k1" })
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return len(c.attemptContainers(ours, 1, true)) == len(ids) },
		"the containers of attempt 1 are not all running")
	if err := k1.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	k1.Wait()

	spool2, ckpt2 := t.TempDir(), t.TempDir()
	k2 := c.startWorkerProcess("k2", spool2, ckpt2, reap...)
	for _, id := range ids {
		c.waitFor(id, 60*time.Second, "ran again on k2", func(j *api.Job) bool {
			return j.Status == api.StatusRunning && j.Worker == "k2" && j.Attempt == 2
		})
	}
	moved := time.Now()
	orphans := len(c.attemptContainers(ours, 1, false))
	testenv.Eventually(t, 60*time.Second, func() bool { return len(c.attemptContainers(ours, 1, false)) == 0 },
		"%d orphaned containers of k1 were not removed", orphans)
	t.Logf("%d orphaned containers of k1 removed within %s of their jobs running on k2", orphans, time.Since(moved).Round(100*time.Millisecond))
	for _, id := range ids {
		h := c.history(id)
		if len(h.Attempts) != 1 || !strings.HasPrefix(h.Attempts[0].Reason, api.ReasonWorkerLost) || !strings.Contains(h.Attempts[0].Note, "may still be running") {
			t.Errorf("history of %s: %+v; want attempt 1 worker_lost, with a note that it may still be running until reaped", id, h.Attempts)
		}
	}

	// k2 dies too, and comes back only after the scheduler moved its jobs on.
	if err := k2.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	k2.Wait()
	for _, id := range ids {
		c.waitFor(id, 60*time.Second, "was recovered from k2", func(j *api.Job) bool { return j.Status == api.StatusQueued && j.Attempt == 3 })
	}
	orphans = len(c.attemptContainers(ours, 2, false))
	back := time.Now()
	c.startWorkerProcess("k2", spool2, ckpt2, "--slots", "2")
	testenv.Eventually(t, 60*time.Second, func() bool { return len(c.attemptContainers(ours, 2, false)) == 0 },
		"%d orphaned containers of k2 were not removed after it came back", orphans)
	t.Logf("%d orphaned containers of k2 removed within %s of its restart", orphans, time.Since(back).Round(100*time.Millisecond))
	for _, id := range ids {
		c.waitFor(id, 60*time.Second, "ran attempt 3", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Attempt == 3 })
		c.cancelAndWait(id)
	}
}

// attemptContainers lists the containers of attempt n of the jobs in ours,
// only the running ones if running.
func (c *cluster) attemptContainers(ours map[string]bool, n int, running bool) []string {
	c.t.Helper()
	var out []string
	for _, ct := range c.containers(worker.LabelJob) {
		if ours[ct.Labels[worker.LabelJob]] && ct.Labels[worker.LabelAttempt] == strconv.Itoa(n) && (!running || ct.State == "running") {
			out = append(out, ct.ID)
		}
	}
	return out
}

// removeContainers removes whatever containers the jobs in ours left.
func (c *cluster) removeContainers(ours map[string]bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := bindings.NewConnection(ctx, c.podman)
	if err != nil {
		return
	}
	for _, ct := range c.containers(worker.LabelJob) {
		if ours[ct.Labels[worker.LabelJob]] {
			containers.Remove(conn, ct.ID, new(containers.RemoveOptions).WithForce(true).WithIgnore(true).WithTimeout(0))
		}
	}
}
