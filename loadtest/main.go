// Command loadtest is issue 14's load test (not a test of the suite): it
// starts jobgate — `jobgate gateway` and `jobgate worker` as child processes
// on a fresh redis-server per scenario — and the peers users would otherwise
// run (asynq, bare podman, nginx), drives each scenario with bounded counts,
// records HDR histograms and each process's CPU time (/proc/PID/stat), and
// writes the report into BENCHMARKS.md between its marker comments:
//
//	export CGO_CFLAGS=-Wno-deprecated-declarations TAGS='remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp'
//	go run -tags "$TAGS" ./loadtest -scenario all -report BENCHMARKS.md
//	go run -tags "$TAGS" ./loadtest -scenario a,c      # some scenarios, report on stdout
//
// Scenarios (issue 14, item 4): a submit throughput vs asynq Enqueue; b idle
// dispatch vs asynq's defaults; c container job overhead vs podman run; d the
// scoring router vs direct and nginx (scripts/bench-scoring.sh); e Redis
// bytes per queued job and gateway RSS; f placement throughput vs an asynq
// server; g idle Redis commands/s. With -gateway (and -token, -redis-url)
// a and the submits of e run against a running jobgate instead, without
// CPU figures for its processes; scenarios that start workers need a
// cluster of their own. Everything is on loopback.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// buildTags are the podman bindings' tags (Makefile TAGS).
const buildTags = "remote exclude_graphdriver_btrfs btrfs_noversion exclude_graphdriver_devicemapper containers_image_openpgp"

type config struct {
	scenario, report      string
	bin                   string
	gatewayURL, token     string
	redisURL              string
	keep                  bool
	aClients, aN, aWarmup int
	bN, bPeerN            int
	bGap, bPeerGap        time.Duration
	cN                    int
	dDuration, dWarmup    time.Duration
	eN                    int
	eMaxTime              time.Duration
	fPeerExec             bool
	fN, fWorkers, fSlots  int
	fPeerConcurrency      int
	fTimeout              time.Duration
	gWorkers              int
	gWindow               time.Duration
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.StringVar(&c.scenario, "scenario", "all", "scenarios to run: all, or letters a-g separated by commas (a,c)")
	fs.StringVar(&c.report, "report", "", "Markdown file whose load-test section is replaced with this run's report (BENCHMARKS.md); without it the report goes to stdout only")
	fs.StringVar(&c.bin, "jobgate", "", "jobgate binary to run (default: built from this checkout into the run's folder)")
	fs.StringVar(&c.gatewayURL, "gateway", "", "target a running gateway at this URL instead of starting clusters (scenarios a, e)")
	fs.StringVar(&c.token, "token", os.Getenv("JOBGATE_TOKEN"), "with -gateway: a token that may submit (env JOBGATE_TOKEN)")
	fs.StringVar(&c.redisURL, "redis-url", os.Getenv("JOBGATE_REDIS_URL"), "with -gateway: its Redis, for used_memory and INFO stats (env JOBGATE_REDIS_URL)")
	fs.BoolVar(&c.keep, "keep", false, "keep the run's folder (logs of every process) instead of removing it")
	fs.IntVar(&c.aClients, "a-clients", 64, "a, e, f: concurrent submitting clients")
	fs.IntVar(&c.aN, "a-n", 20000, "a: submits measured, each side")
	fs.IntVar(&c.aWarmup, "a-warmup", 2000, "a: submits before measuring, each side")
	fs.IntVar(&c.bN, "b-n", 200, "b: jobs dispatched one at a time")
	fs.DurationVar(&c.bGap, "b-gap", 100*time.Millisecond, "b: longest random pause before each jobgate submit")
	fs.IntVar(&c.bPeerN, "b-peer-n", 30, "b: asynq tasks dispatched one at a time")
	fs.DurationVar(&c.bPeerGap, "b-peer-gap", time.Second, "b: longest random pause before each asynq enqueue (asynq's poll interval)")
	fs.IntVar(&c.cN, "c-n", 20, "c: container jobs and podman runs, each")
	fs.DurationVar(&c.dDuration, "d-duration", 4*time.Second, "d: measured time per row of bench-scoring.sh")
	fs.DurationVar(&c.dWarmup, "d-warmup", time.Second, "d: warm-up per row")
	fs.IntVar(&c.eN, "e-n", 100000, "e, g: jobs queued (and asynq tasks)")
	fs.DurationVar(&c.eMaxTime, "e-max-time", 100*time.Second, "e: longest the submits may take; fewer are queued (and the report says so) when they take longer")
	fs.IntVar(&c.fN, "f-n", 20000, "f: jobs drained (and asynq tasks)")
	fs.BoolVar(&c.fPeerExec, "f-peer-exec", true, "f: also drain with an asynq handler that runs /bin/true, as jobgate's jobs do")
	fs.IntVar(&c.fWorkers, "f-workers", 4, "f: workers")
	fs.IntVar(&c.fSlots, "f-slots", 32, "f: slots per worker")
	fs.IntVar(&c.fPeerConcurrency, "f-peer-concurrency", 128, "f: the asynq server's concurrency")
	fs.DurationVar(&c.fTimeout, "f-timeout", 150*time.Second, "f: longest jobgate's drain may take; past it the rate is of the jobs ended by then (the report says so)")
	fs.IntVar(&c.gWorkers, "g-workers", 4, "g: idle workers")
	fs.DurationVar(&c.gWindow, "g-window", 10*time.Second, "g: how long commands are counted")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.gatewayURL != "" && (c.token == "" || c.redisURL == "") {
		return c, fmt.Errorf("-gateway needs -token and -redis-url")
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"a-clients", c.aClients}, {"a-n", c.aN}, {"b-n", c.bN}, {"b-peer-n", c.bPeerN}, {"c-n", c.cN}, {"e-n", c.eN},
		{"f-n", c.fN}, {"f-workers", c.fWorkers}, {"f-slots", c.fSlots}, {"f-peer-concurrency", c.fPeerConcurrency}, {"g-workers", c.gWorkers}} {
		if v.n < 1 {
			return c, fmt.Errorf("-%s must be at least 1, not %d", v.name, v.n)
		}
	}
	return c, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err == flag.ErrHelp {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	keys, err := parseScenarios(cfg.scenario)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, keys); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadtest %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(ctx context.Context, cfg config, keys []string) error {
	began := time.Now()
	m := describeMachine() // before the builds, so the load average is the machine's own
	root, err := repoRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "jobgate-loadtest-")
	if err != nil {
		return err
	}
	if cfg.keep {
		logf("the run's folder: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	e := &env{cfg: cfg, root: root, dir: dir, bin: cfg.bin, self: os.Getpid()}
	if e.bin == "" {
		e.bin = filepath.Join(dir, "jobgate")
		logf("building jobgate")
		if err := goBuild(ctx, root, e.bin, "./cmd/jobgate", true); err != nil {
			return err
		}
	}
	e.toolbox = filepath.Join(dir, "toolbox")
	if err := goBuild(ctx, root, e.toolbox, "./examples/toolbox", false); err != nil {
		return err
	}
	needs := func(ks ...string) bool {
		for _, k := range keys {
			for _, x := range ks {
				if k == x {
					return true
				}
			}
		}
		return false
	}
	if needs("b", "c", "e", "f", "g") && cfg.gatewayURL == "" {
		logf("starting a podman service")
		if e.podman, e.podmanURL, err = startPodman(ctx, dir); err != nil {
			return err
		}
		defer e.podman.stop()
	}
	if needs("c", "e", "g") {
		if err := ensureImage(ctx, root); err != nil {
			return err
		}
	}
	rep := report{command: reproduce(os.Args[1:]), machine: m}
	rep.counts = []string{
		fmt.Sprintf("a %d submits (+%d warm-up) from %d clients, each side", cfg.aN, cfg.aWarmup, cfg.aClients),
		fmt.Sprintf("b %d jobs, %d asynq tasks", cfg.bN, cfg.bPeerN),
		fmt.Sprintf("c %d each", cfg.cN),
		fmt.Sprintf("d %s per row", cfg.dDuration),
		fmt.Sprintf("e/g %d queued, %s windows", cfg.eN, cfg.gWindow),
		fmt.Sprintf("f %d jobs", cfg.fN),
	}
	doneEG := false
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		logf("scenario %s", k)
		var secs []section
		switch k {
		case "a":
			secs = []section{e.scenarioA(ctx)}
		case "b":
			secs = []section{e.external("b", e.scenarioB)(ctx)}
		case "c":
			secs = []section{e.external("c", e.scenarioC)(ctx)}
		case "d":
			secs = []section{e.scenarioD(ctx)}
		case "e", "g":
			if doneEG {
				continue
			}
			doneEG = true
			secs = e.scenarioEG(ctx, needs("e"), needs("g"))
		case "f":
			secs = []section{e.external("f", e.scenarioF)(ctx)}
		}
		for i := range secs {
			secs[i].took = time.Since(t0)
			if secs[i].err != nil {
				logf("scenario %s: %v", secs[i].key, secs[i].err)
			}
		}
		if len(secs) > 1 { // e and g share their wall time
			for i := range secs {
				secs[i].notes = append(secs[i].notes, "Scenarios e and g run on one cluster; the wall time is both together.")
			}
		}
		rep.sections = append(rep.sections, secs...)
	}
	rep.wall = time.Since(began)
	gen := rep.markdown()
	fmt.Print(gen)
	if cfg.report != "" {
		old, err := os.ReadFile(cfg.report)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		if err := os.WriteFile(cfg.report, []byte(replaceSection(string(old), gen)), 0o644); err != nil {
			return err
		}
		logf("wrote %s (%s)", cfg.report, rep.wall.Round(time.Second))
	}
	return ctx.Err()
}

// external refuses scenarios that start workers when -gateway is set.
func (e *env) external(key string, f func(context.Context) section) func(context.Context) section {
	return func(ctx context.Context) section {
		if e.cfg.gatewayURL != "" {
			return section{key: key, err: fmt.Errorf("scenario %s starts workers: it needs a cluster of its own (run without -gateway)", key)}
		}
		return f(ctx)
	}
}

func goBuild(ctx context.Context, root, out, pkg string, tags bool) error {
	args := []string{"build", "-o", out}
	if tags {
		args = append(args, "-tags", buildTags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if os.Getenv("CGO_CFLAGS") == "" {
		cmd.Env = append(cmd.Env, "CGO_CFLAGS=-Wno-deprecated-declarations")
	}
	if !tags {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// ensureImage builds the example image the way the test harness does when
// it is missing (make images; tagged :latest too).
func ensureImage(ctx context.Context, root string) error {
	if exec.CommandContext(ctx, "podman", "image", "exists", exampleImage).Run() == nil {
		return nil
	}
	logf("building %s (make images)", exampleImage)
	if b, err := exec.CommandContext(ctx, "make", "-C", root, "images", "IMAGE="+exampleImage).CombinedOutput(); err != nil {
		return fmt.Errorf("make images: %v\n%s", err, b)
	}
	if b, err := exec.CommandContext(ctx, "podman", "tag", exampleImage, "localhost/jobgate-examples:latest").CombinedOutput(); err != nil {
		return fmt.Errorf("podman tag: %v\n%s", err, b)
	}
	return nil
}

// reproduce is the command line that makes this report again.
func reproduce(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$`\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return "export CGO_CFLAGS=-Wno-deprecated-declarations TAGS='" + buildTags + "'\n" +
		strings.TrimSpace("go run -tags \"$TAGS\" ./loadtest "+strings.Join(q, " "))
}
