package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/worker"
)

// Chaos tests (issue 14, item 7): real `jobgate worker` processes killed with
// SIGKILL, a real redis-server killed and started again on its AOF, a
// worker's link to Redis cut through a fault-injecting proxy. Each checks
// that every job ends exactly once (endedOnce) and that nothing is left
// running. The gateway restart under submit load with retries and
// idempotency keys is TestIdempotencyAcrossGatewayKills.

// endedOnce checks that job j ended once: its record is terminal, and its
// history holds attempts 1..j.Attempt, each once, every one but the last
// handed back (worker_lost, worker_stopped) and the last with the job's
// status. It says what is wrong, or "".
func endedOnce(j jobWithHistory) string {
	if !j.Status.Terminal() {
		return fmt.Sprintf("%s, not ended", j.Status)
	}
	if len(j.Attempts) != j.Attempt {
		return fmt.Sprintf("attempt %d but %d attempts in its history: %+v", j.Attempt, len(j.Attempts), j.Attempts)
	}
	for i, a := range j.Attempts {
		last := i == len(j.Attempts)-1
		switch {
		case a.Attempt != i+1:
			return fmt.Sprintf("history entry %d is attempt %d: %+v", i, a.Attempt, j.Attempts)
		case last && a.Status != j.Status:
			return fmt.Sprintf("last attempt %s, job %s", a.Status, j.Status)
		case !last && a.ReasonCode != api.ReasonWorkerLost && a.ReasonCode != api.ReasonWorkerStopped:
			return fmt.Sprintf("attempt %d ended %s (%s) but the job went on: %+v", a.Attempt, a.Status, a.Reason, j.Attempts)
		}
	}
	return ""
}

// allJobs lists every job of the cluster.
func (c *cluster) allJobs() []api.Job {
	c.t.Helper()
	var all []api.Job
	opts := client.ListOptions{Limit: 500}
	for {
		page, err := c.api.List(context.Background(), opts)
		if err != nil {
			c.t.Fatalf("list jobs: %v", err)
		}
		all = append(all, page.Jobs...)
		if page.NextCursor == "" {
			return all
		}
		opts.Cursor = page.NextCursor
	}
}

// workerRunning says which of the running jobs in ids runs on which worker.
func (c *cluster) runningOn(ids []string) map[string][]string {
	c.t.Helper()
	on := map[string][]string{}
	for _, id := range ids {
		if j := c.get(id); j.Status == api.StatusRunning && j.Worker != "" {
			on[j.Worker] = append(on[j.Worker], id)
		}
	}
	return on
}

// TestChaosWorkerKills SIGKILLs a `jobgate worker` process that runs jobs
// 20 times: every other one is started again under its ID (it requeues its
// attempts at start and removes their containers), the others never come
// back (the scheduler calls them lost and requeues their attempts; a
// replacement under a new ID keeps the capacity). Every job ends exactly
// once, as one job, and no container of the test's jobs is left.
func TestChaosWorkerKills(t *testing.T) {
	const kills = 20
	c := newCluster(t)
	type proc struct {
		id, spool, ckpt string
		cmd             *exec.Cmd
	}
	procs := map[string]*proc{}
	start := func(id string) {
		p := procs[id]
		if p == nil {
			p = &proc{id: id, spool: t.TempDir(), ckpt: t.TempDir()}
			procs[id] = p
		}
		p.cmd = c.startWorkerProcess(id, p.spool, p.ckpt, "--slots", "2", "--reap-every", "2s", "--gateway-url", c.gwURL)
	}
	for i := range 4 {
		start(fmt.Sprintf("chaos-%d", i))
	}
	var ids []string
	submit := func(n int) {
		for range n {
			ids = append(ids, c.submit(api.JobSpec{Command: toolbox("sleep", "5")}).ID)
		}
	}
	submit(24)

	restarted, abandoned := 0, 0
	for k := range kills {
		// A worker with an attempt running; more jobs when all have ended.
		var victim string
		testenv.Eventually(t, 60*time.Second, func() bool {
			on := c.runningOn(ids)
			for id := range procs {
				if len(on[id]) > 0 && procs[id].cmd != nil {
					victim = id
					return true
				}
			}
			if len(on) == 0 && c.queuedOf(ids) == 0 {
				submit(8)
			}
			return false
		}, "no attempt ran on a live worker process for kill %d", k+1)
		p := procs[victim]
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		p.cmd.Wait()
		p.cmd = nil
		if k%2 == 0 {
			start(victim) // same ID, same spool: it comes back
			restarted++
		} else {
			start(fmt.Sprintf("chaos-r%d", k)) // it never does; another takes its place
			abandoned++
		}
	}

	ours := map[string]bool{}
	requeued := 0
	for _, id := range ids {
		ours[id] = true
		c.waitFor(id, 120*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
		j := c.history(id)
		if why := endedOnce(j); why != "" {
			t.Errorf("job %s: %s", id, why)
		}
		if j.Status != api.StatusSucceeded {
			t.Errorf("job %s: %s (%s); want succeeded", id, j.Status, j.Reason)
		}
		requeued += j.Attempt - 1
	}
	jobs := 0
	for _, j := range c.allJobs() {
		if ours[j.ID] {
			jobs++
		}
	}
	if jobs != len(ids) {
		t.Errorf("%d of the test's jobs are listed, want %d", jobs, len(ids))
	}
	var left []string
	testenv.Eventually(t, 60*time.Second, func() bool {
		left = left[:0]
		for _, ct := range c.containers(worker.LabelJob) {
			if ours[ct.Labels[worker.LabelJob]] {
				left = append(left, ct.Labels[worker.LabelJob]+"/"+ct.Labels[worker.LabelAttempt]+" "+ct.State)
			}
		}
		return len(left) == 0
	}, "containers of the test's jobs are left: %v", lazy(func() string { return strings.Join(left, ", ") }))
	t.Logf("%d kills (%d restarted, %d never back): %d jobs, %d attempts requeued, all ended once, no container left",
		kills, restarted, abandoned, len(ids), requeued)
}

// queuedOf counts the jobs in ids that wait to be placed.
func (c *cluster) queuedOf(ids []string) int {
	n := 0
	for _, id := range ids {
		if c.get(id).Status == api.StatusQueued {
			n++
		}
	}
	return n
}

// TestChaosRedisKilledWithQueuedJobs kills redis-server with SIGKILL while
// 200 jobs wait and a worker runs some, and starts it again on its AOF
// (appendfsync everysec, what deploy/ runs: Redis writes the AOF before it
// answers, and only fsyncs once a second, so a killed process loses
// nothing it acknowledged; a lost machine could lose the last second,
// which only `always` prevents, at a cost on every write). None of the
// jobs is lost, each ends once.
func TestChaosRedisKilledWithQueuedJobs(t *testing.T) {
	const queued = 200
	c := newClusterTB(t) // restarts Redis: one server in every mode
	c.startWorker("steady", "--slots", "4")
	ids := make([]string, 0, queued)
	for range queued {
		ids = append(ids, c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "sleep 0.2; echo ok"}}).ID)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return len(c.runningOn(ids)["steady"]) > 0 }, "no job started")

	port := redisPort(t, c.redis.URL)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	info, err := rdb.Info(context.Background(), "server").Result()
	rdb.Close()
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	if pid == 0 {
		t.Fatalf("no process_id in INFO server:\n%s", info)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.redis.Stop() // reaps it
	c.redis = testenv.RedisAt(t, c.redisDir, port)

	seen := 0
	for _, j := range c.allJobs() {
		if slices.Contains(ids, j.ID) {
			seen++
		}
	}
	if seen != queued {
		t.Fatalf("after the restart %d of %d jobs are there", seen, queued)
	}
	requeued := 0
	for _, id := range ids {
		c.waitFor(id, 120*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
		j := c.history(id)
		if why := endedOnce(j); why != "" {
			t.Errorf("job %s: %s", id, why)
		}
		if j.Status != api.StatusSucceeded {
			t.Errorf("job %s: %s (%s); want succeeded", id, j.Status, j.Reason)
		}
		requeued += j.Attempt - 1
	}
	t.Logf("redis-server SIGKILLed with %d jobs queued or running, started on its AOF: all there, all ended once (%d attempts requeued)", queued, requeued)
}

// TestChaosWorkerCutFromRedis cuts the link between a worker process and
// Redis for 20 s (a toxiproxy in this process between them: every byte
// either way is held, as a network partition does). The scheduler calls the
// worker lost and runs its job on another worker; the cut-off worker must
// have stopped its copy first (the attempts' own timestamps may not
// overlap). When the link is back the worker rejoins and takes jobs again.
func TestChaosWorkerCutFromRedis(t *testing.T) {
	c := newClusterTB(t) // proxies one Redis address: one server in every mode
	px := newRedisProxy(t, c.redis.URL)
	dir := t.TempDir()
	c.startWorkerProcess("cut", t.TempDir(), t.TempDir(), "--redis-url", px.url, "--gateway-url", c.gwURL)
	// Each attempt stamps a file of its own every 50 ms; the first runs
	// until stopped, a later one for 2 s.
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
		`f=` + dir + `/$JOBGATE_ATTEMPT; i=0; while [ "$JOBGATE_ATTEMPT" = 1 ] || [ $i -lt 40 ]; do date +%s%N >> $f; sleep 0.05; i=$((i+1)); done`}})
	c.waitFor(j.ID, 30*time.Second, "started on cut", func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker == "cut" })
	testenv.Eventually(t, 10*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "1")); return err == nil }, "attempt 1 never ran")
	c.startWorker("other")

	px.cut(t)
	cutAt := time.Now()
	c.waitFor(j.ID, 20*time.Second, "ran again on other", func(j *api.Job) bool { return j.Attempt == 2 && j.Worker == "other" })
	t.Logf("attempt 2 placed on other %s after the cut", time.Since(cutAt).Round(100*time.Millisecond))
	// The cut lasts 20 s: the point is a partition longer than the
	// worker's lost-after, not something waited for.
	time.Sleep(time.Until(cutAt.Add(20 * time.Second)))
	px.heal(t)

	done := c.waitEnded(j.ID)
	h := c.history(j.ID)
	if why := endedOnce(h); why != "" || done.Status != api.StatusSucceeded || done.Attempt != 2 {
		t.Errorf("job: %s (%s) attempt %d: %s; want succeeded on attempt 2 after attempt 1 was lost", done.Status, done.Reason, done.Attempt, why)
	}
	first, last1 := stamps(t, filepath.Join(dir, "1"))
	first2, last2 := stamps(t, filepath.Join(dir, "2"))
	t.Logf("attempt 1 ran %s..%s, attempt 2 %s..%s after the cut", first.Sub(cutAt).Round(10*time.Millisecond), last1.Sub(cutAt).Round(10*time.Millisecond),
		first2.Sub(cutAt).Round(10*time.Millisecond), last2.Sub(cutAt).Round(10*time.Millisecond))
	if !last1.Before(first2) {
		t.Errorf("the attempts overlapped: attempt 1 ran until %s after the cut, attempt 2 began %s after it",
			last1.Sub(cutAt).Round(10*time.Millisecond), first2.Sub(cutAt).Round(10*time.Millisecond))
	}
	// Attempt 1 stays stopped once the worker is back.
	settled := last1
	testenv.Eventually(t, 30*time.Second, func() bool { return c.workerState("cut") == "up" }, "the cut-off worker did not rejoin")
	if _, l := stamps(t, filepath.Join(dir, "1")); !l.Equal(settled) {
		t.Errorf("attempt 1 ran on after the worker rejoined (until %s after the cut)", l.Sub(cutAt).Round(10*time.Millisecond))
	}

	// It takes jobs again: with the other worker gone, this one runs it.
	c.stopWorker("other")
	again := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "echo back"}}).ID)
	if again.Status != api.StatusSucceeded || again.Worker != "cut" {
		t.Errorf("job after the worker rejoined: %s (%s) on %q; want succeeded on cut", again.Status, again.Reason, again.Worker)
	}
}

// stamps reads the first and last of the nanosecond stamps in file.
func stamps(t *testing.T, file string) (first, last time.Time) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		t.Fatalf("%s is empty", file)
	}
	at := func(s string) time.Time {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: stamp %q: %v", file, s, err)
		}
		return time.Unix(0, n)
	}
	return at(lines[0]), at(lines[len(lines)-1])
}

// BenchmarkKilledWorkerRecovery measures item 6 of issue 14: a `jobgate
// worker` process running a job is SIGKILLed and not started again; the
// figure is the time from the kill to the start of the job's next attempt on
// the standby worker (its started_at), reported as s/recovery. Run it with
// JOBGATE_INTEGRATION=1 go test -run '^$' -bench KilledWorkerRecovery -benchtime 5x ./cmd/jobgate
func BenchmarkKilledWorkerRecovery(b *testing.B) {
	c := newClusterTB(b)
	c.startWorker("standby", "--slots", "1")
	var total time.Duration
	var worst time.Duration
	for i := range b.N {
		victim := fmt.Sprintf("victim-%d", i)
		w := c.startWorkerProcess(victim, b.TempDir(), b.TempDir(), "--slots", "8")
		j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c",
			`if [ "$JOBGATE_ATTEMPT" = 1 ]; then while true; do sleep 0.1; done; fi`}})
		c.waitFor(j.ID, 30*time.Second, "started on "+victim, func(j *api.Job) bool { return j.Status == api.StatusRunning && j.Worker == victim })
		if err := w.Process.Kill(); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		w.Wait()
		again := c.waitFor(j.ID, 60*time.Second, "started again", func(j *api.Job) bool { return j.Attempt == 2 && j.StartedAt != nil })
		took := again.StartedAt.Sub(killed)
		b.Logf("kill %d: attempt 2 started on %s %s after the kill", i+1, again.Worker, took.Round(10*time.Millisecond))
		total += took
		worst = max(worst, took)
		c.waitEnded(j.ID)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/recovery")
	b.ReportMetric(worst.Seconds(), "s-worst")
}
