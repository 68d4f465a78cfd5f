package main

import (
	"cmp"
	"context"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// simGPUModel names the simulated GPU of the stopped worker that makes the
// backlog's jobs admissible while no running worker can take them.
const simGPUModel = "LOADTEST-SIM"

// commandsPerSecond is Redis's total_commands_processed over window, less
// the INFO that read it.
func commandsPerSecond(ctx context.Context, rdb *redis.Client, window time.Duration) (float64, error) {
	a, err := redisInfo(ctx, rdb, "stats", "total_commands_processed")
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(window):
	}
	b, err := redisInfo(ctx, rdb, "stats", "total_commands_processed")
	if err != nil {
		return 0, err
	}
	return float64(b-a-1) / time.Since(t0).Seconds(), nil
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// scenarioEG measures e and g on one cluster: g with no backlog, then e's
// 100,000 submits, then g again with them pending. The backlog's jobs ask
// for a GPU model only a stopped worker has, so they stay pending while the
// idle workers run (and the gateway accepts them: a registered worker could
// run them).
func (e *env) scenarioEG(ctx context.Context, doE, doG bool) []section {
	se, sg := section{key: "e"}, section{key: "g"}
	cfg := e.cfg
	n := cfg.eN
	gpuJob := containerJob(`,"resources":{"gpus":1,"gpu_model":"` + simGPUModel + `"}`)
	se.intro = fmt.Sprintf("Up to %d container jobs (`%s`) submitted by %d clients to a fresh cluster; bytes per job is Redis's `used_memory` after (settled) less before, over the count queued (%d asked); gateway memory is its `VmRSS` after the submits and its `VmHWM` (peak). The jobs ask for a GPU of model %s, which only a stopped worker (registered with `--simulate-gpus 1:%s`) has, so they stay pending while scenario g's %d idle workers run beside them, during the submits too (no worker takes one: as far as the jobs go, there is no worker). Peer: asynq `Enqueue` of as many tasks with the same JSON as payload on a fresh Redis (no server), `used_memory` delta over the count.",
		n, gpuJob, cfg.aClients, n, simGPUModel, simGPUModel, cfg.gWorkers)
	sg.intro = fmt.Sprintf("Redis `total_commands_processed` over %s, as commands per second, on the cluster of scenario e: a gateway (scheduler included) and %d idle `jobgate worker`s (4 slots each), first with no job pending, then with the pending jobs of scenario e (which no running worker can take; the count is the table's). Peer: one asynq v0.26 server with its default configuration, idle on a fresh Redis, then with as many tasks scheduled for a day later (asynq's pending list would be run at once; its scheduled set is its backlog that waits). CPU is each process's over the window.",
		cfg.gWindow, cfg.gWorkers)
	out := func() []section {
		var s []section
		if doE {
			s = append(s, se)
		}
		if doG {
			s = append(s, sg)
		}
		return s
	}
	fail := func(err error) []section { se.err, sg.err = err, err; return out() }

	c, err := e.newCluster(ctx, "eg")
	if err != nil {
		return fail(err)
	}
	defer c.close()
	if c.external { // no stopped GPU worker to make the backlog admissible
		gpuJob = containerJob("")
	}
	if !c.external {
		if _, err := c.startWorker(ctx, "gpu-sim", 1, "--simulate-gpus", "1:"+simGPUModel); err != nil {
			return fail(err)
		}
		c.stopWorkers() // registered, stopped
	}
	gt := table{header: []string{"", "pending", "commands/s", "per idle worker", "CPU over the window: gateway", "workers", "redis-server", "loadtest"}}
	window := func(label string, pending int, workers int) (float64, error) {
		var cpu cpuSet
		cpu.add("gateway", c.gateway)
		cpu.add("worker", c.workers...)
		cpu.add("redis-server", c.redis)
		cpu.addSelf("loadtest", e.self)
		cpu.mark()
		r, err := commandsPerSecond(ctx, c.rdb, cfg.gWindow)
		if err != nil {
			return 0, err
		}
		used := cpu.since()
		per := "–"
		if workers > 0 {
			per = fmtRate(r / float64(workers))
		}
		row := []string{label, fmt.Sprint(pending), fmtRate(r), per}
		for _, k := range []string{"gateway", "worker", "redis-server", "loadtest"} {
			if v, ok := used[k]; ok {
				row = append(row, fmt.Sprintf("%.2f s", v))
			} else {
				row = append(row, "–")
			}
		}
		gt.rows = append(gt.rows, row)
		return r, nil
	}
	var idle0, idleN float64
	if doG && !c.external {
		for i := range cfg.gWorkers {
			if _, err := c.startWorker(ctx, fmt.Sprintf("idle%d", i+1), 4); err != nil {
				return fail(err)
			}
		}
		time.Sleep(2 * time.Second) // past the workers' start-up traffic
		if idle0, err = window(fmt.Sprintf("**jobgate**, gateway + %d idle workers", cfg.gWorkers), 0, cfg.gWorkers); err != nil {
			return fail(err)
		}
	}
	m0, err := settledMemory(ctx, c.rdb)
	if err != nil {
		return fail(err)
	}
	var cpu cpuSet
	cpu.add("gateway", c.gateway)
	cpu.add("redis-server", c.redis)
	cpu.addSelf("loadtest", e.self)
	cpu.mark()
	h, wall, errs, first := driveFor(ctx, cfg.aClients, n, cfg.eMaxTime, func(ctx context.Context) error { _, err := c.submit(ctx, gpuJob); return err })
	used := cpu.since()
	if errs > 0 {
		se.notes = append(se.notes, "jobgate: "+errNote(errs, first))
	}
	queued := h.TotalCount()
	if int(queued)+int(errs) < n {
		cut := fmt.Sprintf("**Count cut to fit the run's bound**: %d of the %d submits were made within `-e-max-time %s`; every figure of e and g (and asynq's count) is for %d.", queued, n, cfg.eMaxTime, queued)
		se.notes = append(se.notes, cut)
		sg.notes = append(sg.notes, cut)
	}
	n = int(queued)
	m1, err := settledMemory(ctx, c.rdb)
	if err != nil {
		return fail(err)
	}
	perJob := float64(m1-m0) / float64(queued)
	et := table{header: []string{"", "queued", "Redis used_memory delta", "bytes per job", "submits/s", "gateway VmRSS", "gateway VmHWM"}}
	var rss, hwm int64
	rssCell, hwmCell := "–", "–"
	if c.gateway != nil {
		rss, _ = statusKB(c.gateway.pid, "VmRSS")
		hwm, _ = statusKB(c.gateway.pid, "VmHWM")
		rssCell, hwmCell = mib(rss), mib(hwm)
	}
	et.rows = append(et.rows, []string{"**jobgate**", fmt.Sprint(queued), fmt.Sprintf("%.1f MiB", float64(m1-m0)/(1<<20)),
		fmt.Sprintf("%.0f", perJob), rate(queued, wall), rssCell, hwmCell})
	lt := table{header: latHeader("submits of the backlog")}
	lt.rows = append(lt.rows, latRow("**jobgate** `POST /v1/jobs`", h, wall, used))

	if doG && !c.external {
		time.Sleep(2 * time.Second)
		if idleN, err = window(fmt.Sprintf("**jobgate**, gateway + %d idle workers", cfg.gWorkers), int(queued), cfg.gWorkers); err != nil {
			return fail(err)
		}
	}
	c.close()

	// The peer: bytes per task.
	rp, opt, rdb, err := e.asynqRedis(ctx, "e-asynq")
	if err != nil {
		return fail(err)
	}
	ac := asynq.NewClient(opt)
	am0, _ := settledMemory(ctx, rdb)
	var acpu cpuSet
	acpu.add("redis-server", rp)
	acpu.addSelf("loadtest", e.self)
	acpu.mark()
	ah, awall, aerrs, afirst := drive(ctx, cfg.aClients, n, func(ctx context.Context) error {
		_, err := ac.EnqueueContext(ctx, asynq.NewTask("loadtest", gpuJob))
		return err
	})
	aused := acpu.since()
	if aerrs > 0 {
		se.notes = append(se.notes, "asynq: "+errNote(aerrs, afirst))
	}
	am1, _ := settledMemory(ctx, rdb)
	peerPer := float64(am1-am0) / float64(ah.TotalCount())
	et.rows = append(et.rows, []string{"asynq `Enqueue` (peer)", fmt.Sprint(ah.TotalCount()), fmt.Sprintf("%.1f MiB", float64(am1-am0)/(1<<20)),
		fmt.Sprintf("%.0f", peerPer), rate(ah.TotalCount(), awall), "–", "–"})
	lt.rows = append(lt.rows, latRow("asynq `Client.Enqueue` (peer)", ah, awall, aused))
	ac.Close()
	rdb.Close()
	rp.stop()
	se.tables = append(se.tables, et, lt)
	kb := func(v float64) string { return fmt.Sprintf("%.2f KB", v/1024) }
	se.targets = append(se.targets, maxTarget("Redis bytes per queued job (1 KB = 1024 B)", perJob, 1024, kb))
	if c.gateway != nil {
		se.targets = append(se.targets, maxTarget(fmt.Sprintf("gateway RSS at %d queued", queued), float64(rss), 64*1024, func(v float64) string { return mib(int64(v)) }))
	}
	se.notes = append(se.notes, fmt.Sprintf("asynq's bytes per task: %.0f; jobgate's per job is %.2f× that.", peerPer, perJob/peerPer))

	if doG {
		// The peer: an idle asynq server, then with a scheduled backlog.
		rp, opt, rdb, err := e.asynqRedis(ctx, "g-asynq")
		if err != nil {
			sg.err = err
			return out()
		}
		defer rp.stop()
		defer rdb.Close()
		srv := asynq.NewServer(opt, asynq.Config{LogLevel: asynq.ErrorLevel})
		mux := asynq.NewServeMux()
		mux.HandleFunc("loadtest", func(context.Context, *asynq.Task) error { return nil })
		if err := srv.Start(mux); err != nil {
			sg.err = err
			return out()
		}
		defer srv.Shutdown()
		awindow := func(pending int) (float64, error) {
			var cpu cpuSet
			cpu.add("redis-server", rp)
			cpu.addSelf("loadtest", e.self)
			cpu.mark()
			r, err := commandsPerSecond(ctx, rdb, cfg.gWindow)
			if err != nil {
				return 0, err
			}
			used := cpu.since()
			gt.rows = append(gt.rows, []string{"asynq server, defaults (peer)", fmt.Sprint(pending), fmtRate(r), "–", "–", "–",
				fmt.Sprintf("%.2f s", used["redis-server"]), fmt.Sprintf("%.2f s", used["loadtest"])})
			return r, nil
		}
		time.Sleep(2 * time.Second)
		if _, err := awindow(0); err != nil {
			sg.err = err
			return out()
		}
		ac := asynq.NewClient(opt)
		_, _, _, _ = drive(ctx, cfg.aClients, n, func(ctx context.Context) error {
			_, err := ac.EnqueueContext(ctx, asynq.NewTask("loadtest", gpuJob), asynq.ProcessIn(24*time.Hour))
			return err
		})
		ac.Close()
		time.Sleep(2 * time.Second)
		if _, err := awindow(n); err != nil {
			sg.err = err
			return out()
		}
		sg.tables = append(sg.tables, gt)
		if !c.external {
			rate := func(v float64) string { return fmt.Sprintf("%s commands/s", fmtRate(v)) }
			sg.targets = append(sg.targets, maxTarget(fmt.Sprintf("commands/s per idle worker, no backlog (all of Redis's, gateway included, / %d)", cfg.gWorkers), idle0/float64(cfg.gWorkers), 10, rate))
			tg := maxTarget(fmt.Sprintf("scheduler cost independent of the backlog: commands/s with %d pending less with 0", queued), idleN-idle0, max(idle0*0.1, 5), rate)
			tg.goal = fmt.Sprintf("≤ %s (10%% of the idle rate, at least 5)", rate(max(idle0*0.1, 5)))
			sg.targets = append(sg.targets, tg)
		}
	}
	return out()
}

// ---- f. placement throughput

func (e *env) scenarioF(ctx context.Context) section {
	s := section{key: "f"}
	cfg := e.cfg
	n := cfg.fN
	s.intro = fmt.Sprintf("%d `mode: process` jobs running `/bin/true`, queued first (the %d workers registered, then stopped: host-process jobs need a registered worker that runs them), then the %d `jobgate worker`s (%d slots each) started again; wall time from their start to the last job ended (polled every 100 ms through `GET /v1/jobs?status=queued|running&limit=1`), so it includes the workers' start-up. Peer: %d no-op tasks enqueued, then a plain asynq v0.26 server (`Concurrency: %d`, otherwise defaults) started and timed until its handler has run %d times.",
		n, cfg.fWorkers, cfg.fWorkers, cfg.fSlots, n, cfg.fPeerConcurrency, n)
	c, err := e.newCluster(ctx, "f")
	if err != nil {
		s.err = err
		return s
	}
	defer c.close()
	ids := make([]string, cfg.fWorkers)
	for i := range ids {
		ids[i] = fmt.Sprintf("w%d", i+1)
		if _, err := c.startWorker(ctx, ids[i], cfg.fSlots); err != nil {
			s.err = err
			return s
		}
	}
	c.stopWorkers()
	body := []byte(`{"mode":"process","command":["/bin/true"]}`)
	_, swall, errs, first := drive(ctx, cfg.aClients, n, func(ctx context.Context) error { _, err := c.submit(ctx, body); return err })
	if errs > 0 {
		s.err = fmt.Errorf("submitting the backlog: %s", errNote(errs, first))
		return s
	}
	var cpu cpuSet
	cpu.add("gateway", c.gateway)
	cpu.add("redis-server", c.redis)
	cpu.addSelf("loadtest", e.self)
	cpu.mark()
	t0 := time.Now()
	var wg sync.WaitGroup
	var startErr atomic.Value
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.startWorker(ctx, id, cfg.fSlots); err != nil {
				startErr.Store(err)
			}
		}()
	}
	wg.Wait()
	if err, _ := startErr.Load().(error); err != nil {
		s.err = err
		return s
	}
	// The workers' CPU from their (re)start: added now they have PIDs.
	var wcpu cpuSet
	wcpu.add("worker", c.workers...)
	wcpu.at = make([]float64, 1) // from zero: the processes are new
	deadline := time.Now().Add(cfg.fTimeout)
	ended := n
	for {
		q, err1 := c.anyIn(ctx, api.StatusQueued)
		r, err2 := c.anyIn(ctx, api.StatusRunning)
		if err1 == nil && err2 == nil && !q && !r {
			break
		}
		if time.Now().After(deadline) {
			// Cut: the rate is what ended by now.
			nq, err1 := c.countIn(ctx, api.StatusQueued)
			nr, err2 := c.countIn(ctx, api.StatusRunning)
			if err := cmp.Or(err1, err2); err != nil {
				s.err = fmt.Errorf("the %d jobs were not drained within %s, and counting them failed: %w", n, cfg.fTimeout, err)
				return s
			}
			ended = n - nq - nr
			s.notes = append(s.notes, fmt.Sprintf("**Drain cut to fit the run's bound**: at `-f-timeout %s`, %d of the %d jobs had ended (%d queued, %d running); jobgate's figures are for the %d that ended.", cfg.fTimeout, ended, n, nq, nr, ended))
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	wall := time.Since(t0)
	used := cpu.since()
	used["worker"] = wcpu.since()["worker"]
	failed, _ := c.anyIn(ctx, api.StatusFailed)
	if failed {
		s.notes = append(s.notes, "Some jobs **failed** (see the gateway's `GET /v1/jobs?status=failed`).")
	}
	t := table{header: []string{"", "jobs", "wall", "jobs/s", "CPU s/1k jobs: gateway", "worker", "redis-server", "loadtest"}}
	row := func(label string, n int, wall time.Duration, used map[string]float64) []string {
		r := []string{label, fmt.Sprint(n), wall.Round(10 * time.Millisecond).String(), fmtRate(float64(n) / wall.Seconds())}
		for _, k := range []string{"gateway", "worker", "redis-server", "loadtest"} {
			if v, ok := used[k]; ok {
				r = append(r, fmt.Sprintf("%.2f", v*1000/float64(n)))
			} else {
				r = append(r, "–")
			}
		}
		return r
	}
	t.rows = append(t.rows, row(fmt.Sprintf("**jobgate**, %d workers × %d slots, `/bin/true`", cfg.fWorkers, cfg.fSlots), ended, wall, used))
	ours := float64(ended) / wall.Seconds()
	s.notes = append(s.notes, fmt.Sprintf("Submitting the backlog took %s (%s submits/s).", swall.Round(10*time.Millisecond), rate(int64(n), swall)))
	c.close()

	awall, aused, err := e.asynqDrain(ctx, "f-asynq", n, body, func() error { return nil })
	if err != nil {
		s.err = err
		return s
	}
	t.rows = append(t.rows, row(fmt.Sprintf("asynq server, concurrency %d, no-op handler (peer)", cfg.fPeerConcurrency), n, awall, aused))
	peer := float64(n) / awall.Seconds()
	if cfg.fPeerExec {
		xwall, xused, err := e.asynqDrain(ctx, "f-asynq-exec", n, body, func() error { return exec.Command("/bin/true").Run() })
		if err != nil {
			s.err = err
			return s
		}
		t.rows = append(t.rows, row(fmt.Sprintf("asynq server, concurrency %d, handler runs `/bin/true` (peer, same work as jobgate's job)", cfg.fPeerConcurrency), n, xwall, xused))
	}
	s.tables = append(s.tables, t)
	s.targets = append(s.targets, ratioTarget("placement throughput vs asynq (no-op handler)", ours, peer, "jobs/s"))
	s.notes = append(s.notes, "jobgate's jobs are real host processes (fork, exec, a log, the job's records and events); the issue's peer runs a function call per task, so a second asynq row runs `/bin/true` in its handler (`exec.Command(...).Run()`; the process's CPU is counted in `loadtest`) to show how much of the gap is the process itself.")
	return s
}

// asynqDrain enqueues n tasks on a fresh Redis, then starts a plain asynq
// server of the configured concurrency and times it until handle has run n
// times; the CPU is Redis's and this process's from the server's start.
func (e *env) asynqDrain(ctx context.Context, name string, n int, payload []byte, handle func() error) (time.Duration, map[string]float64, error) {
	rp, opt, rdb, err := e.asynqRedis(ctx, name)
	if err != nil {
		return 0, nil, err
	}
	defer rp.stop()
	defer rdb.Close()
	ac := asynq.NewClient(opt)
	_, _, errs, first := drive(ctx, e.cfg.aClients, n, func(ctx context.Context) error {
		_, err := ac.EnqueueContext(ctx, asynq.NewTask("loadtest", payload))
		return err
	})
	ac.Close()
	if errs > 0 {
		return 0, nil, fmt.Errorf("asynq enqueue: %s", errNote(errs, first))
	}
	var handled atomic.Int64
	done := make(chan struct{})
	srv := asynq.NewServer(opt, asynq.Config{Concurrency: e.cfg.fPeerConcurrency, LogLevel: asynq.ErrorLevel})
	mux := asynq.NewServeMux()
	mux.HandleFunc("loadtest", func(context.Context, *asynq.Task) error {
		err := handle()
		if handled.Add(1) == int64(n) {
			close(done)
		}
		return err
	})
	var cpu cpuSet
	cpu.add("redis-server", rp)
	// This process with the children it reaps: the /bin/true of the
	// handler that runs one (nothing else ends meanwhile).
	cpu.add("loadtest", &proc{pid: e.self})
	cpu.mark()
	t0 := time.Now()
	if err := srv.Start(mux); err != nil {
		return 0, nil, err
	}
	defer srv.Shutdown()
	select {
	case <-done:
	case <-time.After(e.cfg.fTimeout):
		return 0, nil, fmt.Errorf("asynq drained %d of %d within %s", handled.Load(), n, e.cfg.fTimeout)
	}
	wall := time.Since(t0)
	return wall, cpu.since(), nil
}
