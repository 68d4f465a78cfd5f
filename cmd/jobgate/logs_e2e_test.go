package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestKilledAttemptLogStaysReadable kills a `jobgate worker` process with
// SIGKILL while it runs several jobs; another worker runs their second
// attempts. After the jobs end, each one's log holds both attempts, each
// under its header, and ?attempt=N serves one of them; the first attempt's
// log was stored at rest from the live stream. The dead worker's spool files
// are gone once it starts again.
func TestKilledAttemptLogStaysReadable(t *testing.T) {
	c := newCluster(t)
	spool, ckpt := t.TempDir(), t.TempDir()
	doomed := c.startWorkerProcess("doomed", spool, ckpt)

	const n = 4 // the worker's slots
	var ids []string
	for range n {
		ids = append(ids, c.submit(api.JobSpec{Mode: api.ModeProcess, MaxRetries: 1, Command: []string{"/bin/sh", "-c",
			`echo "attempt $JOBGATE_ATTEMPT says hello"
if [ "$JOBGATE_ATTEMPT" = 1 ]; then echo "attempt 1 last words"; while true; do sleep 0.1; done; fi
echo done`}}).ID)
	}
	for _, id := range ids {
		c.waitFor(id, 30*time.Second, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
		testenv.Eventually(t, 10*time.Second, func() bool { return strings.Contains(c.logs(id), "attempt 1 last words") }, "job %s never printed", id)
	}
	if err := doomed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	doomed.Wait()
	if left, _ := filepath.Glob(filepath.Join(spool, "*.log")); len(left) != n {
		t.Fatalf("the killed worker left %d spool files, want %d (one per attempt)", len(left), n)
	}

	c.startWorker("rescuer")
	lost := 0
	for _, id := range ids {
		j := c.waitFor(id, 90*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
		if j.Status != api.StatusSucceeded || j.Attempt != 2 {
			t.Fatalf("job %s: %s (%s) attempt %d; want succeeded on attempt 2", id, j.Status, j.Reason, j.Attempt)
		}
		if !strings.Contains(c.logs(id), "attempt 1 says hello") {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("attempt 1's log is lost for %d of %d killed attempts:\n%s", lost, n, c.logs(ids[0]))
	}
	for _, id := range ids {
		got := c.logs(id)
		want := `==> attempt 1 (failed: worker_lost: worker doomed stopped heartbeating) <==
attempt 1 says hello
attempt 1 last words
jobgate: attempt 1 ended without its worker storing its log; these 2 lines are what the live log stream held of it
==> attempt 2 (succeeded) <==
attempt 2 says hello
done
`
		if got != want {
			t.Fatalf("log of job %s:\n%s\nwant:\n%s", id, got, want)
		}
		for a, want := range map[int]string{1: "attempt 1 says hello\nattempt 1 last words\n", 2: "attempt 2 says hello\ndone\n"} {
			var body string
			if code := c.rawLogs(id, "attempt="+strconv.Itoa(a), &body); code != http.StatusOK || !strings.HasPrefix(body, want) || strings.Contains(body, "==>") {
				t.Fatalf("logs?attempt=%d of job %s: %d %q; want %q without a header", a, id, code, body, want)
			}
		}
		if code := c.rawLogs(id, "attempt=3", nil); code != http.StatusNotFound {
			t.Fatalf("logs?attempt=3 of a job of 2 attempts: %d, want 404", code)
		}
		rest, err := os.ReadFile(filepath.Join(c.artifacts, "jobs", id, "logs", "000001.log"))
		if err != nil || !strings.Contains(string(rest), "attempt 1 last words\n") {
			t.Fatalf("attempt 1's log at rest: %q, %v; want it stored from the live stream", rest, err)
		}
	}

	// Started again, the dead worker removes the spool files it left.
	c.startWorkerProcess("doomed", spool, ckpt)
	if left, _ := filepath.Glob(filepath.Join(spool, "*.log")); len(left) != 0 {
		t.Fatalf("spool files left after the restart: %v", left)
	}
}

// rawLogs GETs a job's log with a query; the body goes to body if not nil.
func (c *cluster) rawLogs(id, query string, body *string) int {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.gwURL+"/v1/jobs/"+id+"/logs?"+query, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&sb); err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		*body = sb.String()
	}
	return resp.StatusCode
}

// procStatus reads a field of /proc/PID/status in KiB (VmHWM: peak RSS).
func procStatus(t testing.TB, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// redisInfo reads one field of INFO.
func redisInfo(t testing.TB, rdb redis.UniversalClient, section, field string) int64 {
	t.Helper()
	info, err := rdb.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in INFO %s", field, section)
	return 0
}

func (c *cluster) redisClient() redis.UniversalClient {
	c.t.Helper()
	return testenv.RedisClient(c.t, c.redisAt())
}

// TestHugeLogLineIsSplit runs a container job that prints one 50 MiB line
// on a `jobgate worker` process: the log holds it as 50 lines of 1 MiB and a
// note saying so, and the worker's peak RSS grows by less than the line.
// Its peak RSS and Redis's peak memory are logged.
func TestHugeLogLineIsSplit(t *testing.T) {
	c := newClusterTB(t) // reads one Redis's INFO memory: one server in every mode
	w := c.startWorkerProcess("big", t.TempDir(), t.TempDir())
	rdb := c.redisClient()
	const size = 50 << 20
	rssBefore, redisBefore := procStatus(t, w.Process.Pid, "VmHWM"), redisInfo(t, rdb, "memory", "used_memory_peak")

	j := c.submit(api.JobSpec{Command: toolbox("bigline", strconv.Itoa(size))})
	if j = c.waitFor(j.ID, 2*time.Minute, "ended", func(j *api.Job) bool { return j.Status.Terminal() }); j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", j.Status, j.Reason)
	}
	rssAfter, redisAfter := procStatus(t, w.Process.Pid, "VmHWM"), redisInfo(t, rdb, "memory", "used_memory_peak")
	t.Logf("one %d MiB line: worker peak RSS %d → %d MiB; Redis used_memory_peak %d → %d MiB",
		size>>20, rssBefore>>10, rssAfter>>10, redisBefore>>20, redisAfter>>20)
	// Held whole even once, the line would add its size to the peak.
	if grew := (rssAfter - rssBefore) << 10; grew >= size {
		t.Errorf("the worker's peak RSS grew by %d MiB for one line of %d MiB: it held the line whole", grew>>20, size>>20)
	}

	got := c.logs(j.ID)
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	want := size >> 20
	if len(lines) != want+1 {
		t.Fatalf("log has %d lines; want %d of 1 MiB and a note", len(lines), want)
	}
	piece := strings.Repeat("x", 1<<20)
	for i, l := range lines[:want] {
		if l != piece {
			t.Fatalf("line %d has %d bytes, want 1 MiB of x", i, len(l))
		}
	}
	if note := fmt.Sprintf("jobgate: a line of %d bytes on stdout was longer than 1048576 bytes; it was split into %d lines", size, want); lines[want] != note {
		t.Fatalf("last line %.200q, want %q", lines[want], note)
	}
}

// followers opens n log followers of n running jobs on a worker with n
// slots; it returns the job IDs and each follower's lines. The followers end
// with the test.
func (c *cluster) followers(n int) ([]string, []chan string) {
	c.t.Helper()
	c.startWorker("many", "--slots", strconv.Itoa(n))
	var ids []string
	for range n {
		ids = append(ids, c.submit(api.JobSpec{Mode: api.ModeProcess, TimeoutSeconds: 3600,
			Command: []string{"/bin/sh", "-c", "echo started; exec sleep 3600"}}).ID)
	}
	for _, id := range ids {
		c.waitFor(id, 2*time.Minute, "started", func(j *api.Job) bool { return j.Status == api.StatusRunning })
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	c.t.Cleanup(func() { cancel(); wg.Wait() })
	lines := make([]chan string, n)
	for i, id := range ids {
		lines[i] = make(chan string, 16)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(lines[i])
			r, err := c.api.Logs(ctx, id, true)
			if err != nil {
				if ctx.Err() == nil {
					c.t.Errorf("follow %s: %v", id, err)
				}
				return
			}
			defer r.Close()
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				select {
				case lines[i] <- sc.Text():
				default:
				}
			}
		}()
	}
	return ids, lines
}

// TestLogFollowersLeaveRequestPool connects 200 followers of running jobs:
// each gets its job's lines, requests that have nothing to do with them are
// answered, and no follower blocks a Redis connection (INFO clients'
// blocked_clients counts those; the gateway's request pool has 20 on this
// machine). The latency figure is BenchmarkRequestWhileFollowed's.
func TestLogFollowersLeaveRequestPool(t *testing.T) {
	c := newClusterTB(t) // reads one Redis's INFO clients: one server in every mode
	ids, lines := c.followers(200)
	for i, ch := range lines {
		select {
		case l := <-ch:
			if l != "started" {
				t.Fatalf("follower of %s got %q first, want its job's line", ids[i], l)
			}
		case <-time.After(time.Minute):
			t.Fatalf("follower of %s got no line", ids[i])
		}
	}
	rdb := c.redisClient()
	for i := range 20 {
		var j api.Job
		if code := c.do(http.MethodGet, "/v1/jobs/"+ids[i], "", &j); code != http.StatusOK || j.Status != api.StatusRunning {
			t.Fatalf("GET /v1/jobs/%s while 200 followers are connected: %d %s", ids[i], code, j.Status)
		}
		// The gateway's completion notifier blocks one connection at most.
		if n := redisInfo(t, rdb, "clients", "blocked_clients"); n > 1 {
			t.Fatalf("Redis has %d blocked clients with 200 log followers connected; followers must not block connections", n)
		}
	}
	// The end of a job still reaches its follower: cancel one, and its
	// follow ends.
	if code := c.do(http.MethodPost, "/v1/jobs/"+ids[0]+"/cancel", "", nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	c.waitEnded(ids[0])
	testenv.Eventually(t, 30*time.Second, func() bool {
		select {
		case _, open := <-lines[0]:
			return !open
		default:
			return false
		}
	}, "the follow of a canceled job did not end")
}

// BenchmarkRequestWhileFollowed measures GET /v1/jobs/{id} while 200 log
// followers of running jobs are connected, and Redis's blocked_clients:
//
//	JOBGATE_INTEGRATION=1 go test -tags "$TAGS" -run '^$' -bench RequestWhileFollowed -benchtime 50x ./cmd/jobgate
func BenchmarkRequestWhileFollowed(b *testing.B) {
	c := newClusterTB(b)
	ids, lines := c.followers(200)
	for _, ch := range lines {
		<-ch // connected: its job's first line came
	}
	rdb := c.redisClient()
	var d []time.Duration
	blocked, failed := int64(0), 0
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if code := c.do(http.MethodGet, "/v1/jobs/"+ids[i%len(ids)], "", nil); code != http.StatusOK {
			failed++
		}
		d = append(d, time.Since(start))
		blocked = max(blocked, redisInfo(b, rdb, "clients", "blocked_clients"))
	}
	reportPercentiles(b, d)
	b.ReportMetric(float64(blocked), "max-blocked-clients")
	b.ReportMetric(float64(failed), "non-200")
}

// TestBackslashOutputNameIsSkipped: a job that exits 0 with a backslash in
// an output file's name succeeds on its first attempt; the file is skipped
// with a line in its log, the others are collected.
func TestBackslashOutputNameIsSkipped(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, MaxRetries: 2, Command: []string{"/bin/sh", "-c",
		`printf x > "$JOBGATE_OUTPUTS/a\\b.txt"; printf model > "$JOBGATE_OUTPUTS/good.txt"`}})
	if j = c.waitEnded(j.ID); j.Status != api.StatusSucceeded || j.Attempt != 1 {
		t.Fatalf("job: %s (%s) attempt %d; want succeeded on attempt 1\n%s", j.Status, j.Reason, j.Attempt, c.logs(j.ID))
	}
	if logs := c.logs(j.ID); !strings.Contains(logs, `jobgate: outputs: skipped "a\\b.txt"`) {
		t.Fatalf("log %q does not say the file was skipped", logs)
	}
	var arts struct {
		Artifacts []struct{ Path string } `json:"artifacts"`
	}
	if code := c.do(http.MethodGet, "/v1/jobs/"+j.ID+"/artifacts", "", &arts); code != http.StatusOK || len(arts.Artifacts) != 1 || arts.Artifacts[0].Path != "good.txt" {
		t.Fatalf("artifacts: %d %+v; want good.txt alone", code, arts)
	}
}
