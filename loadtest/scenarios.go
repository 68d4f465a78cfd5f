package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// exampleImage is the test harness's build of examples/ (make images).
const exampleImage = "localhost/jobgate-examples:test"

// containerJob is the body scenarios a and e submit: a small container job.
func containerJob(extra string) []byte {
	return []byte(`{"image":"` + exampleImage + `","command":["/bin/toolbox","echo","loadtest"]` + extra + `}`)
}

// drive runs op n times from clients goroutines (each takes the next
// operation when its previous one returned) and records each latency.
func drive(ctx context.Context, clients, n int, op func(ctx context.Context) error) (*hdrhistogram.Histogram, time.Duration, int64, error) {
	return driveFor(ctx, clients, n, 0, op)
}

// driveFor is drive that takes no new operation once within has passed
// (0: no limit), so a count too large for the run's bound is cut.
func driveFor(ctx context.Context, clients, n int, within time.Duration, op func(ctx context.Context) error) (*hdrhistogram.Histogram, time.Duration, int64, error) {
	var (
		next     atomic.Int64
		errs     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	hists := make([]*hdrhistogram.Histogram, clients)
	start := time.Now()
	more := func() bool { return within <= 0 || time.Since(start) < within }
	for i := range clients {
		hists[i] = newHist()
		wg.Add(1)
		go func(h *hdrhistogram.Histogram) {
			defer wg.Done()
			for more() && next.Add(1) <= int64(n) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					errs.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				_ = h.RecordValue(time.Since(t0).Microseconds())
			}
		}(hists[i])
	}
	wg.Wait()
	wall := time.Since(start)
	total := newHist()
	for _, h := range hists {
		total.Merge(h)
	}
	return total, wall, errs.Load(), firstErr
}

func errNote(errs int64, first error) string {
	if errs == 0 {
		return ""
	}
	return fmt.Sprintf("%d operations failed (left out of the figures); the first: %s", errs, oneLine(first.Error()))
}

// asynqRedis is a fresh redis-server for a peer, like the clusters' own.
func (e *env) asynqRedis(ctx context.Context, name string) (*proc, asynq.RedisClientOpt, *redis.Client, error) {
	p, url, err := startRedis(ctx, filepath.Join(e.dir, name, "redis"))
	if err != nil {
		return nil, asynq.RedisClientOpt{}, nil, err
	}
	o, _ := redis.ParseURL(url)
	return p, asynq.RedisClientOpt{Addr: o.Addr}, redis.NewClient(o), nil
}

// ---- a. submit throughput

func (e *env) scenarioA(ctx context.Context) section {
	s := section{key: "a"}
	n, clients, warm := e.cfg.aN, e.cfg.aClients, e.cfg.aWarmup
	s.intro = fmt.Sprintf("`POST /v1/jobs` of a container job (`%s`, with the system admin token; no worker, so every job stays queued) from %d closed-loop clients sharing keep-alive connections, %d submits after %d not recorded; against asynq v0.26 `Client.Enqueue` (default client options) of a task whose payload is the same JSON, from %d goroutines, on a fresh redis-server of the same configuration.",
		containerJob(""), clients, n, warm, clients)
	t := table{header: latHeader("")}
	body := containerJob("")
	c, err := e.newCluster(ctx, "a")
	if err != nil {
		s.err = err
		return s
	}
	op := func(ctx context.Context) error { _, err := c.submit(ctx, body); return err }
	drive(ctx, clients, warm, op)
	var cpu cpuSet
	cpu.add("gateway", c.gateway)
	cpu.add("redis-server", c.redis)
	cpu.addSelf("loadtest", e.self)
	cpu.mark()
	h, wall, errs, first := drive(ctx, clients, n, op)
	t.rows = append(t.rows, latRow("**jobgate** `POST /v1/jobs`", h, wall, cpu.since()))
	ours := float64(h.TotalCount()) / wall.Seconds()
	if note := errNote(errs, first); note != "" {
		s.notes = append(s.notes, "jobgate: "+note)
	}
	c.close()

	rp, opt, rdb, err := e.asynqRedis(ctx, "a-asynq")
	if err != nil {
		s.err = err
		return s
	}
	defer rp.stop()
	defer rdb.Close()
	ac := asynq.NewClient(opt)
	defer ac.Close()
	aop := func(ctx context.Context) error {
		_, err := ac.EnqueueContext(ctx, asynq.NewTask("loadtest", body))
		return err
	}
	drive(ctx, clients, warm, aop)
	var acpu cpuSet
	acpu.add("redis-server", rp)
	acpu.addSelf("loadtest", e.self)
	acpu.mark()
	h, wall, errs, first = drive(ctx, clients, n, aop)
	t.rows = append(t.rows, latRow("asynq `Client.Enqueue` (peer)", h, wall, acpu.since()))
	peer := float64(h.TotalCount()) / wall.Seconds()
	if note := errNote(errs, first); note != "" {
		s.notes = append(s.notes, "asynq: "+note)
	}
	s.tables = append(s.tables, t)
	s.targets = append(s.targets, ratioTarget("submit throughput vs raw asynq Enqueue", ours, peer, "submits/s"))
	return s
}

// ---- b. idle dispatch

func (e *env) scenarioB(ctx context.Context) section {
	s := section{key: "b"}
	cfg := e.cfg
	s.intro = fmt.Sprintf("Sequential, one job at a time on an idle system, a random pause of 0–%s before each submit. jobgate: a `mode: process` job running `toolbox now` (examples/toolbox built for the host: it prints the time it started) on one `jobgate worker` (4 slots, `--allow-host-process`); *submit → process start* is the client's clock before `POST /v1/jobs` to the time the process printed; *attempt start* is the job record's `created_at` → `started_at`. Peer: an asynq v0.26 server with its default configuration, `Enqueue` → handler start, a random pause of 0–%s before each (asynq polls an empty queue once per second, so the pause spans its whole sleep); %d jobs, %d asynq tasks.",
		cfg.bGap, cfg.bPeerGap, cfg.bN, cfg.bPeerN)
	t := table{header: latHeader("")}
	c, err := e.newCluster(ctx, "b")
	if err != nil {
		s.err = err
		return s
	}
	defer c.close()
	if _, err := c.startWorker(ctx, "w1", 4); err != nil {
		s.err = err
		return s
	}
	body, _ := json.Marshal(api.JobSpec{Mode: api.ModeProcess, Command: []string{e.toolbox, "now"}})
	run := func() (proc, attempt time.Duration, err error) {
		t0 := time.Now()
		id, err := c.submit(ctx, body)
		if err != nil {
			return 0, 0, err
		}
		j, err := c.api.Wait(ctx, id)
		if err != nil {
			return 0, 0, err
		}
		if j.Status != api.StatusSucceeded || j.StartedAt == nil {
			return 0, 0, fmt.Errorf("job %s: %s (%s)", id, j.Status, j.Reason)
		}
		out, err := c.logs(ctx, id)
		if err != nil {
			return 0, 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("toolbox now printed %q", out)
		}
		return time.Unix(0, ns).Sub(t0), j.StartedAt.Sub(j.CreatedAt), nil
	}
	for range 3 { // warm: connections, the worker's first exec
		if _, _, err := run(); err != nil {
			s.err = err
			return s
		}
	}
	var cpu cpuSet
	cpu.add("gateway", c.gateway)
	cpu.add("worker", c.workers...)
	cpu.add("redis-server", c.redis)
	cpu.addSelf("loadtest", e.self)
	cpu.mark()
	toProc, toAttempt := newHist(), newHist()
	var errs int64
	var first error
	start := time.Now()
	for range cfg.bN {
		time.Sleep(time.Duration(rand.Int64N(int64(cfg.bGap) + 1)))
		p, a, err := run()
		if err != nil {
			errs++
			first = cmpErr(first, err)
			continue
		}
		_ = toProc.RecordValue(max(p.Microseconds(), 1))
		_ = toAttempt.RecordValue(max(a.Microseconds(), 1))
	}
	wall := time.Since(start)
	used := cpu.since()
	t.rows = append(t.rows, latRow("**jobgate**, submit → process start", toProc, wall, used))
	t.rows = append(t.rows, latRow("**jobgate**, attempt start (`created_at` → `started_at`)", toAttempt, wall, used))
	if note := errNote(errs, first); note != "" {
		s.notes = append(s.notes, "jobgate: "+note)
	}

	rp, opt, rdb, err := e.asynqRedis(ctx, "b-asynq")
	if err != nil {
		s.err = err
		return s
	}
	defer rp.stop()
	defer rdb.Close()
	started := make(chan time.Duration, 1)
	srv := asynq.NewServer(opt, asynq.Config{LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("loadtest", func(ctx context.Context, t *asynq.Task) error {
		ns, _ := strconv.ParseInt(string(t.Payload()), 10, 64)
		started <- time.Since(time.Unix(0, ns))
		return nil
	})
	if err := srv.Start(mux); err != nil {
		s.err = err
		return s
	}
	defer srv.Shutdown()
	ac := asynq.NewClient(opt)
	defer ac.Close()
	var acpu cpuSet
	acpu.add("redis-server", rp)
	acpu.addSelf("loadtest", e.self)
	acpu.mark()
	ah := newHist()
	start = time.Now()
	for range cfg.bPeerN {
		time.Sleep(time.Duration(rand.Int64N(int64(cfg.bPeerGap) + 1)))
		if _, err := ac.EnqueueContext(ctx, asynq.NewTask("loadtest", []byte(strconv.FormatInt(time.Now().UnixNano(), 10)))); err != nil {
			s.err = err
			return s
		}
		select {
		case d := <-started:
			_ = ah.RecordValue(max(d.Microseconds(), 1))
		case <-time.After(30 * time.Second):
			s.err = errors.New("asynq: a task did not start within 30s")
			return s
		}
	}
	t.rows = append(t.rows, latRow("asynq defaults, `Enqueue` → handler start (peer)", ah, time.Since(start), acpu.since()))
	s.tables = append(s.tables, t)
	ms := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	q := func(h *hdrhistogram.Histogram, p float64) float64 { return float64(h.ValueAtQuantile(p)) / 1000 }
	s.targets = append(s.targets,
		maxTarget("idle dispatch p50, submit → process start", q(toProc, 50), 2, ms),
		maxTarget("idle dispatch p99, submit → process start", q(toProc, 99), 5, ms),
		maxTarget("idle dispatch p50, attempt start", q(toAttempt, 50), 2, ms),
		maxTarget("idle dispatch p99, attempt start", q(toAttempt, 99), 5, ms))
	s.notes = append(s.notes, "The CPU columns divide all CPU spent over the sequence, the pauses included, by the jobs run: what an idle system costs per dispatched job.")
	return s
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// logs reads a job's whole log.
func (c *cluster) logs(ctx context.Context, id string) (string, error) {
	rc, err := c.api.Logs(ctx, id, false)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	var b strings.Builder
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String(), sc.Err()
}

// ---- c. container job overhead

func (e *env) scenarioC(ctx context.Context) section {
	s := section{key: "c"}
	n := e.cfg.cN
	s.intro = fmt.Sprintf("Sequential, %d each after 2 not recorded. jobgate: a container job `%s /bin/toolbox echo loadtest` (one `jobgate worker`, `--network host`, podman's API service with runc), from the client's `POST /v1/jobs` to the first line read from `GET /v1/jobs/{id}/logs?follow=true` (opened right after the submit); each job is waited for before the next. Peer: `podman --runtime runc run --rm --network host --ulimit nofile=S:S --ulimit nproc=S:S` (the worker's limits: this process's soft ones) of the same image and command, from the CLI's start to the first line on its stdout (then to its exit). The peer's podman column is the CLI process's own CPU; conmon and runc are outside either figure.",
		n, exampleImage)
	t := table{header: latHeader("")}
	c, err := e.newCluster(ctx, "c")
	if err != nil {
		s.err = err
		return s
	}
	defer c.close()
	if _, err := c.startWorker(ctx, "w1", 4); err != nil {
		s.err = err
		return s
	}
	body := containerJob("")
	run := func() (time.Duration, error) {
		t0 := time.Now()
		id, err := c.submit(ctx, body)
		if err != nil {
			return 0, err
		}
		rc, err := c.api.Logs(ctx, id, true)
		if err != nil {
			return 0, err
		}
		line, err := bufio.NewReader(rc).ReadString('\n')
		took := time.Since(t0)
		rc.Close()
		if err != nil {
			return 0, fmt.Errorf("job %s: first line: %w", id, err)
		}
		if !strings.Contains(line, "loadtest") {
			return 0, fmt.Errorf("job %s: first line %q", id, line)
		}
		j, err := c.api.Wait(ctx, id)
		if err != nil {
			return 0, err
		}
		if j.Status != api.StatusSucceeded {
			return 0, fmt.Errorf("job %s: %s (%s)", id, j.Status, j.Reason)
		}
		return took, nil
	}
	for range 2 {
		if _, err := run(); err != nil {
			s.err = err
			return s
		}
	}
	var cpu cpuSet
	cpu.add("gateway", c.gateway)
	cpu.add("worker", c.workers...)
	cpu.add("redis-server", c.redis)
	cpu.add("podman", e.podman)
	cpu.addSelf("loadtest", e.self)
	cpu.mark()
	h := newHist()
	var errs int64
	var first error
	start := time.Now()
	for range n {
		d, err := run()
		if err != nil {
			errs++
			first = cmpErr(first, err)
			continue
		}
		_ = h.RecordValue(d.Microseconds())
	}
	t.rows = append(t.rows, latRow("**jobgate** container job, submit → first line", h, time.Since(start), cpu.since()))
	ours := float64(h.ValueAtQuantile(50)) / 1000
	if note := errNote(errs, first); note != "" {
		s.notes = append(s.notes, "jobgate: "+note)
	}

	podmanRun := func() (first, exit time.Duration, cpuS float64, err error) {
		cmd := exec.CommandContext(ctx, "podman", append(append([]string{"--runtime", "runc", "run", "--rm", "--network", "host"}, ulimits()...),
			exampleImage, "/bin/toolbox", "echo", "loadtest")...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, 0, 0, err
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			return 0, 0, 0, err
		}
		line, rerr := bufio.NewReader(out).ReadString('\n')
		first = time.Since(t0)
		werr := cmd.Wait()
		exit = time.Since(t0)
		if werr != nil || rerr != nil || !strings.Contains(line, "loadtest") {
			return 0, 0, 0, fmt.Errorf("podman run: %v %v %q %s", werr, rerr, line, stderr.String())
		}
		return first, exit, (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), nil
	}
	for range 2 {
		if _, _, _, err := podmanRun(); err != nil {
			s.err = err
			return s
		}
	}
	var pcpu cpuSet
	pcpu.addSelf("loadtest", e.self)
	pcpu.mark()
	ph, pexit := newHist(), newHist()
	var cliCPU float64
	errs, first = 0, nil
	start = time.Now()
	for range n {
		f, x, cs, err := podmanRun()
		if err != nil {
			errs++
			first = cmpErr(first, err)
			continue
		}
		cliCPU += cs
		_ = ph.RecordValue(f.Microseconds())
		_ = pexit.RecordValue(x.Microseconds())
	}
	wall := time.Since(start)
	used := pcpu.since()
	used["podman"] = cliCPU
	t.rows = append(t.rows, latRow("bare `podman run`, start → first line (peer)", ph, wall, used))
	t.rows = append(t.rows, latRow("bare `podman run`, start → exit (peer)", pexit, wall, used))
	if note := errNote(errs, first); note != "" {
		s.notes = append(s.notes, "podman run: "+note)
	}
	s.tables = append(s.tables, t)
	peer := float64(ph.ValueAtQuantile(50)) / 1000
	tg := target{what: "container job to first output, p50", goal: "≤ bare `podman run`",
		measured: fmt.Sprintf("%.0f ms vs %.0f ms", ours, peer), met: ours <= peer}
	if tg.met {
		tg.by = fmt.Sprintf("%.0f ms faster", peer-ours)
	} else {
		tg.by = fmt.Sprintf("by %.0f ms (%.2f×)", ours-peer, ours/peer)
	}
	s.targets = append(s.targets, tg)
	return s
}

// ulimits are the --ulimit flags that give a bare `podman run` the limits
// jobgate's worker gives its containers (this process's soft RLIMIT_NOFILE
// and RLIMIT_NPROC, the latter at most pid_max): podman's own default, the
// hard limits, is refused here (runc: "error setting rlimit ... operation not
// permitted").
func ulimits() []string {
	var out []string
	for _, l := range []struct {
		name     string
		resource int
	}{{"nofile", syscall.RLIMIT_NOFILE}, {"nproc", 6 /* RLIMIT_NPROC */}} {
		var r syscall.Rlimit
		if syscall.Getrlimit(l.resource, &r) != nil {
			continue
		}
		v := r.Cur
		if l.name == "nproc" {
			if b, err := os.ReadFile("/proc/sys/kernel/pid_max"); err == nil {
				if pm, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
					v = min(v, pm)
				}
			}
		}
		out = append(out, "--ulimit", fmt.Sprintf("%s=%d:%d", l.name, v, v))
	}
	return out
}

// ---- d. scoring, through scripts/bench-scoring.sh

func (e *env) scenarioD(ctx context.Context) section {
	s := section{key: "d"}
	s.intro = fmt.Sprintf("`scripts/bench-scoring.sh` (see \"Scoring latency\" above for what it sets up: the example modelserver direct, behind Debian's nginx with a keep-alive upstream, and behind `jobgate scoring`; tracing on at 1%% into Jaeger when the test harness's Jaeger is built) with `DURATION=%s WARMUP=%s`, run by the load test; its closed-loop `scripts/loadgen` rows as it prints them. CPU per process is not split here (the script starts its own processes).",
		e.cfg.dDuration, e.cfg.dWarmup)
	cmd := exec.CommandContext(ctx, filepath.Join(e.root, "scripts", "bench-scoring.sh"))
	cmd.Dir = e.root
	cmd.Env = append(os.Environ(), "DURATION="+e.cfg.dDuration.String(), "WARMUP="+e.cfg.dWarmup.String())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.err = fmt.Errorf("bench-scoring.sh: %v: %s", err, lastLines(stderr.String(), 5))
		return s
	}
	t, rows := parseLoadgenTable(string(out))
	if len(t.rows) == 0 {
		s.err = fmt.Errorf("bench-scoring.sh printed no rows: %s", lastLines(stderr.String(), 5))
		return s
	}
	s.tables = append(s.tables, t)
	if strings.Contains(stderr.String(), "tracing off") {
		s.notes = append(s.notes, "Tracing was **off** in this run: the Jaeger test binary is not built (`make jaeger`).")
	}
	// Issue 12's targets (item 5 of issue 14 names none for d).
	d1, n1, r1 := rows["direct/1"], rows["nginx/1"], rows["jobgate router/1"]
	n16, r16 := rows["nginx/16"], rows["jobgate router/16"]
	if d1 != nil && n1 != nil && r1 != nil && n16 != nil && r16 != nil {
		it := table{header: []string{"issue 12's target (none in issue 14's item 5)", "measured", "result"}}
		ra, na := r1.p50-d1.p50, n1.p50-d1.p50
		res := "missed"
		if ra <= na {
			res = "met"
		}
		it.rows = append(it.rows, []string{"router's added p50 ≤ nginx's (c=1)", fmt.Sprintf("router adds %.3f ms, nginx %.3f ms", ra, na), res})
		res = "missed"
		if r1.p99 <= 0.5 {
			res = "met"
		}
		it.rows = append(it.rows, []string{"router p99 ≤ 0.5 ms (c=1)", fmt.Sprintf("%.3f ms (direct %.3f ms)", r1.p99, d1.p99), res})
		res = fmt.Sprintf("missed by %.0f%%", (1-r16.rps/n16.rps)*100)
		if r16.rps >= n16.rps {
			res = "met"
		}
		it.rows = append(it.rows, []string{"router throughput ≥ nginx's (c=16)", fmt.Sprintf("%.0f vs %.0f req/s", r16.rps, n16.rps), res})
		s.tables = append(s.tables, it)
	}
	return s
}

type loadgenRow struct{ rps, p50, p99 float64 }

// parseLoadgenTable reads the Markdown table bench-scoring.sh prints: its
// header and rows as they are, and per "label/c" the figures the targets use.
func parseLoadgenTable(out string) (table, map[string]*loadgenRow) {
	var t table
	rows := map[string]*loadgenRow{}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") || strings.HasPrefix(l, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if t.header == nil {
			t.header = cells
			continue
		}
		t.rows = append(t.rows, cells)
		if len(cells) < 6 {
			continue
		}
		label := cells[0]
		if strings.HasPrefix(label, "nginx") {
			label = "nginx"
		}
		num := func(s string) float64 { v, _ := strconv.ParseFloat(strings.TrimSuffix(s, " ms"), 64); return v }
		rows[label+"/"+cells[1]] = &loadgenRow{rps: num(cells[2]), p50: num(cells[3]), p99: num(cells[5])}
	}
	return t, rows
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " / ")
}
