// Command jobgate is one binary for every part of jobgate: `jobgate dev` runs
// the gateway and a worker in one process for a laptop; `jobgate gateway` and
// `jobgate worker` run the parts separately against one Redis; the other
// subcommands are the CLI. This file only wires: flags and environment are
// read here and nowhere else.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/gateway"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/gpu"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/redisconn"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/telemetry"
	"github.com/jobgate/jobgate/internal/webhook"
	"github.com/jobgate/jobgate/scoring"
	"github.com/jobgate/jobgate/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: an end-to-end test calls it with its own
// arguments, environment and outputs.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	root := rootCommand(getenv, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(stderr, msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "error:", err)
	return 1
}

// rootCommand is the jobgate command with every subcommand, their flags
// bound to their JOBGATE_* variables (bindEnv).
func rootCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "jobgate",
		Short:         "A self-hosted job gateway for machine learning",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(devCommand(getenv, stdout, stderr), gatewayCommand(getenv, stderr), workerCommand(getenv, stderr))
	root.AddCommand(scoringCommand(getenv, stderr), migrateKeysCommand(stdout))
	root.AddCommand(cliCommands(getenv, stdout, stderr)...)
	bindEnv(root, getenv)
	return root
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// startRedisComponent is the start of `jobgate gateway` and `worker`: a
// logger, and a checked connection to the Redis they share.
func startRedisComponent(ctx context.Context, stderr io.Writer, logLevel, redisURL, redisCA string) (*slog.Logger, redis.UniversalClient, error) {
	logger, err := newLogger(stderr, logLevel)
	if err != nil {
		return nil, nil, err
	}
	if redisURL == "" {
		return nil, nil, errors.New("--redis-url (or JOBGATE_REDIS_URL) is required")
	}
	rdb, err := connectRedis(ctx, redisURL, redisCA)
	if err != nil {
		return nil, nil, err
	}
	if err := checkKeys(ctx, rdb, false, logger); err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return logger, rdb, nil
}

// connectRedis opens a client for a Redis URL in any form redisconn takes
// (one server, Sentinel, Cluster; password and database included) and
// checks that it answers. caFile, for the TLS forms, holds the CA that
// signed the servers' certificates, when it is not one the system trusts.
func connectRedis(ctx context.Context, url, caFile string) (redis.UniversalClient, error) {
	rdb, _, err := redisconn.Open(ctx, url, caFile)
	return rdb, err
}

// Flags default to their zero value, which leaves the default to the
// component's New (its cmp.Or); the usage text names that default, since
// pflag prints "(default X)" only for a non-zero default. A flag whose zero
// value means something else than the component's default keeps an
// explicit default, with the reason beside it.

// gatewayFlags are the flags that configure the gateway, of `jobgate gateway`
// and `jobgate dev`; gatewayConfig makes its Config of them.
type gatewayFlags struct {
	addr, tlsCert, tlsKey string
	datastoreRoots        []string
	metricsAddr           string
	maxRunArtifactsMB     int64
	// allowCallbacks, hostProcessDefault and workerLostAfter are flags of
	// `jobgate gateway` only; dev sets the first two itself.
	allowCallbacks     []string
	hostProcessDefault bool
	workerLostAfter    time.Duration
}

// register adds the flags dev and gateway share; gateway adds its own.
func (f *gatewayFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "", "address of the HTTP API (default "+gateway.DefaultAddr+")")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "serve HTTPS with this certificate file (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "private key file for --tls-cert (PEM)")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", metricsAddrUsage)
	fl.Int64Var(&f.maxRunArtifactsMB, "max-run-artifacts-mb", 0, "cap on what MLflow's artifact proxy stores for one run, its files together, in MiB; an upload past it is a 413 (default 10240)")
	fl.StringArrayVar(&f.datastoreRoots, "datastore-root", nil, "folder below which workspace admins may register datastores: /path for every workspace, WORKSPACE=/path for one (repeatable; the system admin token may register any path)")
}

// gatewayConfig is the gateway's Config and its control plane's as the
// flags give them, with the admin token; gateway.New and control.New fill
// the defaults, and gateway.New validates the rest.
func gatewayConfig(f *gatewayFlags, adminToken string) (gateway.Config, control.Config, error) {
	var policy webhook.AddressPolicy
	for _, a := range f.allowCallbacks {
		switch a {
		case "loopback":
			policy.AllowLoopback = true
		case "private":
			policy.AllowPrivate = true
		default:
			return gateway.Config{}, control.Config{}, fmt.Errorf("--allow-callbacks-to %q: want loopback or private", a)
		}
	}
	return gateway.Config{Addr: f.addr, AdminToken: adminToken, TLSCertFile: f.tlsCert, TLSKeyFile: f.tlsKey,
			DatastoreRoots: f.datastoreRoots, HostProcessDefault: f.hostProcessDefault, MaxRunArtifactBytes: f.maxRunArtifactsMB << 20},
		control.Config{CallbackPolicy: policy, WorkerLostAfter: f.workerLostAfter}, nil
}

// workerFlags are the flags that configure the worker and its executors, of
// `jobgate worker` and `jobgate dev`; workerConfig makes their Configs of
// them.
type workerFlags struct {
	// id, allowHost, spoolDir, checkpointDir and gatewayURL are flags of
	// `jobgate worker` only; dev sets them itself.
	id, spoolDir, checkpointDir, gatewayURL string
	// scoringURL is the scoring router batch jobs send through.
	scoringURL string
	allowHost  bool

	podmanURL  string
	network    string
	keepFailed bool
	stopGrace  time.Duration
	nofile     uint64
	nproc      uint64
	slots      int
	simulate   string
	gpuSample  time.Duration
	// The size limits, in the flags' units (MiB, KiB).
	maxOutMB, maxInMB      int64
	maxLineKB              int
	maxLiveLogMB, maxLogMB int64
	mounts                 []string
	nodePrep               string
	nodePrepTimeout        time.Duration
	shutdownTimeout        time.Duration
	reapEvery              time.Duration
	lostAfter              time.Duration
	advertiseHost          string
	drainDelay             time.Duration
}

// register adds the flags dev and worker share; worker adds its own.
// defaultNetwork is explicit because "" is a choice of its own (podman's
// default bridge, the worker's default), and dev defaults to "host".
func (f *workerFlags) register(cmd *cobra.Command, defaultNetwork string) {
	fl := cmd.Flags()
	fl.StringVar(&f.podmanURL, "podman-url", "", "podman API service socket (default "+worker.DefaultPodmanURL+")")
	fl.StringVar(&f.network, "network", defaultNetwork, `network mode of job containers: "host", "none", or "" for podman's default bridge`)
	fl.BoolVar(&f.keepFailed, "keep-failed", false, "keep containers of failed attempts for debugging")
	fl.DurationVar(&f.stopGrace, "stop-grace", 0, "time between SIGTERM and SIGKILL when a job is stopped; registered, so that the deadlines of the tasks placed here cover it (default "+worker.DefaultStopGrace.String()+")")
	fl.Uint64Var(&f.nofile, "rlimit-nofile", 0, "RLIMIT_NOFILE in containers (default: this process's soft limit)")
	fl.Uint64Var(&f.nproc, "rlimit-nproc", 0, "RLIMIT_NPROC in containers (default: this process's soft limit, at most pid_max)")
	fl.IntVar(&f.slots, "slots", 0, "jobs this worker runs at once (default 4)")
	fl.StringVar(&f.simulate, "simulate-gpus", "", "present N simulated GPUs (N[:MODEL], e.g. 2:H100) instead of the real ones")
	fl.DurationVar(&f.gpuSample, "gpu-sample-every", 0, "how often GPU utilization and memory are sampled into job metrics and /v1/workers (default 10s)")
	fl.Int64Var(&f.maxInMB, "max-input-mb", 0, "cap on what the download inputs of one job attempt may copy, in MiB; a job over it fails with input_unavailable (default 102400)")
	fl.Int64Var(&f.maxOutMB, "max-output-mb", 0, "cap on what one job attempt may leave in JOBGATE_OUTPUTS, in MiB; a job over it fails with outputs_too_large (default 10240)")
	fl.IntVar(&f.maxLineKB, "max-log-line-kb", 0, "longest job log line kept whole, in KiB; a longer one is split into lines of this size, and the log says so (default 1024)")
	fl.Int64Var(&f.maxLiveLogMB, "max-live-log-mb", 0, "cap on what one job attempt's log may put in Redis, in MiB; past it the log is kept at rest only (served when the attempt ends), and the log says so (default 64)")
	fl.Int64Var(&f.maxLogMB, "max-log-mb", 0, "cap on one job attempt's stored log, in MiB; past it lines are dropped, and the log says so (default 10240)")
	fl.StringArrayVar(&f.mounts, "mount", nil, "NAME=/host/folder: every job on this worker gets the folder read-only at /mounts/NAME (repeatable)")
	fl.StringVar(&f.nodePrep, "node-prep", "", "executable run once at start, before any job; if it fails the worker stays out of service and says why in /v1/workers")
	fl.DurationVar(&f.nodePrepTimeout, "node-prep-timeout", 0, "how long --node-prep may run before it counts as failed (default 10m)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 0, "on SIGTERM, how long running jobs may take to end before they are stopped and handed back to run elsewhere (default 10s)")
	fl.StringVar(&f.advertiseHost, "advertise-host", "", "address a deployment's replicas listen on and are reached at, each on a free port of its own (default "+worker.DefaultAdvertiseHost+")")
	fl.DurationVar(&f.drainDelay, "drain-delay", 0, "how long a stopped replica keeps serving after its endpoint says draining, so every scoring router has dropped it, before it gets SIGTERM (default "+worker.DefaultDrainDelay.String()+")")
	fl.DurationVar(&f.reapEvery, "reap-every", 0, "how often containers that no worker runs any more (left by a killed worker) are removed; also done at start (default 30s)")
	fl.DurationVar(&f.lostAfter, "worker-lost-after", 0, "the gateways' --worker-lost-after, or less: cut off from Redis for all but 3s of it, this worker stops its running jobs before they are run elsewhere (default 7s)")
}

// workerConfig is the worker's Config and its podman executor's as the flags
// give them: the sizes converted to bytes, the mounts parsed, all checked
// before anything starts. Zero flags leave the defaults to worker.New and
// NewPodmanExecutor. The podman URL is the one exception: dev starts the
// service on it and worker names it when podman does not answer, so it is
// resolved here. The host-process executor takes the worker's StopGrace.
func workerConfig(f *workerFlags) (worker.Config, worker.PodmanConfig, error) {
	cfg := worker.Config{ID: f.id, Slots: f.slots, AllowHostProcess: f.allowHost, SpoolDir: f.spoolDir,
		CheckpointDir: f.checkpointDir, GPUSampleEvery: f.gpuSample, GatewayURL: f.gatewayURL, ScoringURL: f.scoringURL, StopGrace: f.stopGrace,
		NodePrep: f.nodePrep, NodePrepTimeout: f.nodePrepTimeout, ShutdownTimeout: f.shutdownTimeout, ReapEvery: f.reapEvery, LostAfter: f.lostAfter,
		AdvertiseHost: f.advertiseHost, DrainDelay: f.drainDelay}
	pcfg := worker.PodmanConfig{URL: cmp.Or(f.podmanURL, worker.DefaultPodmanURL), Network: f.network, KeepFailed: f.keepFailed,
		StopGrace: f.stopGrace, NofileLimit: f.nofile, NprocLimit: f.nproc}
	cfg.Mounts = map[string]string{}
	for _, kv := range f.mounts {
		name, path, ok := strings.Cut(kv, "=")
		if !ok || name == "" || path == "" {
			return cfg, pcfg, fmt.Errorf("--mount %q: want NAME=/host/folder", kv)
		}
		if _, dup := cfg.Mounts[name]; dup {
			return cfg, pcfg, fmt.Errorf("--mount: %s is given twice", name)
		}
		cfg.Mounts[name] = path
	}
	const maxMB = 1 << 20 // 1 TiB
	for _, l := range []struct {
		flag  string
		n     int64
		max   int64
		shift uint
		to    *int64
	}{
		{"--max-input-mb", f.maxInMB, maxMB, 20, &cfg.MaxInputBytes},
		{"--max-output-mb", f.maxOutMB, maxMB, 20, &cfg.MaxOutputBytes},
		{"--max-live-log-mb", f.maxLiveLogMB, maxMB, 20, &cfg.MaxLiveLogBytes},
		{"--max-log-mb", f.maxLogMB, maxMB, 20, &cfg.MaxLogBytes},
		{"--max-log-line-kb", int64(f.maxLineKB), 1 << 20, 10, nil},
	} {
		if l.n < 0 || l.n > l.max {
			return cfg, pcfg, fmt.Errorf("%s must be between 1 and %d (0 for the default), not %d", l.flag, l.max, l.n)
		}
		if l.to != nil {
			*l.to = l.n << l.shift
		}
	}
	cfg.MaxLogLineBytes = f.maxLineKB << 10
	if err := cfg.Validate(); err != nil {
		return cfg, pcfg, err
	}
	return cfg, pcfg, pcfg.Validate()
}

// gpus opens the GPU inventory: simulated ones when asked, else the real
// ones through NVML, else none (a machine without an NVIDIA driver).
func (f *workerFlags) gpus(ctx context.Context, logger *slog.Logger) (gpu.Inventory, error) {
	if f.simulate != "" {
		n, model, err := gpu.ParseSimulate(f.simulate)
		if err != nil {
			return nil, fmt.Errorf("--simulate-gpus: %w", err)
		}
		inv, err := gpu.Simulated(n, model, 0)
		if err != nil {
			return nil, err
		}
		logger.InfoContext(ctx, "simulated GPUs: jobs get visibility variables but no device", slog.Int("count", n))
		return inv, nil
	}
	inv, err := gpu.Open(logger)
	if errors.Is(err, gpu.ErrNoDriver) {
		logger.InfoContext(ctx, "no GPUs", slog.Any("reason", err))
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	logger.InfoContext(ctx, "GPUs", slog.Int("count", len(inv.Devices())))
	return inv, nil
}

func devCommand(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var (
		dataDir, redisURL, logLevel string
		secretsKeyFile, redisCA     string
		gf                          gatewayFlags
		wf                          workerFlags
		ra                          replicaAcks
		af                          artifactFlags
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run the gateway and a worker in one process, for a laptop",
		Long: `Runs the gateway and a worker in one process. Without --redis-url it starts
redis-server (AOF on, files in the data dir), or an in-process Redis that keeps
nothing when redis-server is not installed. Jobs run in podman containers when a
podman service answers (one is started when podman is installed), else as host
processes. The admin token is $JOBGATE_TOKEN, else the one saved in
<data-dir>/token, else a new one that is printed once and saved there.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := af.check(); err != nil {
				return err
			}
			stopTelemetry, err := startTelemetry(ctx, "jobgate", stderr)
			if err != nil {
				return err
			}
			defer stopTelemetry() // last, after every other defer below
			logger, err := newLogger(stderr, logLevel)
			if err != nil {
				return err
			}
			// Absolute, because redis-server changes into its --dir before it
			// opens files named relative to where it was started.
			if dataDir, err = filepath.Abs(dataDir); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			// What dev decides for its gateway and its worker, where the
			// separate commands have flags: on a laptop, callbacks to a
			// local receiver are the normal case, host-process jobs are
			// allowed, and the worker's folders are in the data dir.
			gf.addr = cmp.Or(gf.addr, gateway.DefaultAddr) // printed below, and given to jobs
			gf.allowCallbacks, gf.hostProcessDefault = []string{"loopback"}, true
			scheme := "http"
			if gf.tlsCert != "" {
				scheme = "https"
			}
			wf.id, wf.allowHost, wf.gatewayURL = "dev", true, scheme+"://"+gf.addr
			wf.scoringURL = wf.gatewayURL // dev serves /v2 beside the API
			wf.spoolDir, wf.checkpointDir = filepath.Join(dataDir, "spool"), filepath.Join(dataDir, "checkpoints")
			wcfg, pcfg, err := workerConfig(&wf)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dataDir, 0o700); err != nil {
				return fmt.Errorf("data dir: %w", err)
			}
			token, err := devToken(getenv, dataDir, stdout)
			if err != nil {
				return err
			}
			gcfg, ccfg, err := gatewayConfig(&gf, token)
			if err != nil {
				return err
			}
			// The scoring router serves /v2 on the API's address.
			var router *scoring.Router
			gcfg.Around = func(h http.Handler) http.Handler { return withScoring(router)(h) }
			gcfg.TracerProvider = telemetry.Provider()
			ccfg.TracerProvider = gcfg.TracerProvider
			ownRedis := redisURL == ""
			if ownRedis {
				svc, err := startDevRedis(ctx, dataDir, logger)
				if err != nil {
					return err
				}
				defer svc.Stop()
				redisURL = svc.URL
			}
			rdb, err := connectRedis(ctx, redisURL, redisCA)
			if err != nil {
				return err
			}
			defer rdb.Close()
			if err := checkKeys(ctx, rdb, ownRedis, logger); err != nil {
				return err
			}

			executors, stopPodman := devExecutors(ctx, wcfg, pcfg, dataDir, logger)
			defer stopPodman()
			box, err := devSecrets(secretsKeyFile, dataDir)
			if err != nil {
				return err
			}
			scfg, err := ra.storeConfig(redisURL)
			if err != nil {
				return err
			}
			st := store.New(rdb, scfg)
			af.defaultDir = filepath.Join(dataDir, "artifacts")
			arts, err := af.open(ctx)
			if err != nil {
				return err
			}
			// One registry for every part: the API's /metrics and
			// --metrics-addr serve them all.
			reg := metrics.NewRegistry()
			ccfg.Metrics = metrics.NewControl(reg, st)
			gcfg.Metrics, gcfg.MetricsGatherer, wcfg.Metrics = ccfg.Metrics, reg, metrics.NewWorker(reg)
			if router, err = scoring.New(scoring.Config{AdminToken: token, Metrics: metrics.NewScoring(reg)}, rdb, st, nil, logger); err != nil {
				return err
			}
			defer router.Close()
			// The API's "try it" (POST /v1/deployments/:name/infer) goes through it too.
			gcfg.Scoring = router
			plane, err := control.New(ccfg, rdb, st, box, logger)
			if err != nil {
				return err
			}
			gcfg.Around = aroundForTests(ctx, gcfg.Around)
			gw, err := gateway.New(gcfg, rdb, st, arts, box, plane, logger)
			if err != nil {
				return err
			}
			if wcfg.GPUs, err = wf.gpus(ctx, logger); err != nil {
				return err
			}
			if wcfg.GPUs != nil {
				defer wcfg.GPUs.Close()
			}
			wcfg.TracerProvider = telemetry.Provider()
			wk := worker.New(wcfg, rdb, st, arts, executors, box, logger)
			fmt.Fprintf(stdout, "jobgate dev: API on http://%s, scoring on http://%s/v2 (data in %s)\n", gf.addr, gf.addr, dataDir)
			fmt.Fprintf(stdout, "jobgate dev: portal on http://%s/ui/ (sign in with the admin token)\n", gf.addr)
			serveMetrics, err := metricsServer(gf.metricsAddr, reg, logger)
			if err != nil {
				return err
			}
			// The gateway's parts and the worker run until a signal, or
			// until the first of them fails (runGateway says in what order
			// they stop); then, deferred above, GPUs, podman, the Redis
			// client and redis-server stop.
			return runBeside(ctx, func(ctx context.Context) error { return runGateway(ctx, gw, plane, wk, router.Run) }, serveMetrics)
		},
	}
	fl := cmd.Flags()
	// The folders' defaults are explicit: they are the CLI's own (beside
	// the working directory), not a component's.
	fl.StringVar(&dataDir, "data-dir", "./.jobgate", "folder for Redis files, logs, artifacts and the token")
	fl.StringVar(&redisURL, "redis-url", "", "Redis to use instead of starting one")
	fl.StringVar(&redisCA, "redis-ca-file", "", "CA certificate (PEM) that signed a rediss:// server's certificate")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&secretsKeyFile, "secrets-key-file", "", "AES-256 key for workspace secrets, base64 (default: <data-dir>/secrets.key, created if missing)")
	ra.register(fl)
	af.register(cmd, false, "", "")
	gf.register(cmd)
	wf.register(cmd, "host")
	return cmd
}

// startDevRedis starts redis-server with its files in dataDir/redis, or,
// when redis-server is not installed, an in-process Redis that keeps
// nothing (and says so loudly).
func startDevRedis(ctx context.Context, dataDir string, logger *slog.Logger) (*devenv.Service, error) {
	svc, err := devenv.StartRedisServer(ctx, filepath.Join(dataDir, "redis"))
	if err == nil {
		logger.InfoContext(ctx, "started redis-server", slog.String("url", svc.URL), slog.String("dir", filepath.Join(dataDir, "redis")))
		return svc, nil
	}
	logger.WarnContext(ctx, "redis-server unavailable, using an IN-PROCESS REDIS: NOTHING PERSISTS when jobgate stops; install redis-server to keep jobs and logs", slog.Any("reason", err))
	return devenv.StartMiniredis()
}

// devExecutors are dev's worker's executors: host processes always, podman
// containers when a podman service answers (one is started when podman is
// installed; stop stops it).
func devExecutors(ctx context.Context, wcfg worker.Config, pcfg worker.PodmanConfig, dataDir string, logger *slog.Logger) (executors map[api.Mode]worker.Executor, stop func()) {
	executors = map[api.Mode]worker.Executor{
		api.ModeProcess: worker.NewProcessExecutor(worker.ProcessConfig{StopGrace: wcfg.StopGrace, WorkDir: filepath.Join(dataDir, "work")}, logger),
	}
	podmanSvc, pod := devPodman(ctx, pcfg, dataDir, logger)
	stop = func() {}
	if podmanSvc != nil {
		stop = func() { _ = podmanSvc.Stop() }
	}
	if pod != nil {
		executors[api.ModeContainer] = pod
		logger.InfoContext(ctx, "container jobs run in podman", slog.String("url", pcfg.URL), slog.String("network", pcfg.Network))
	} else {
		logger.WarnContext(ctx, "no podman service: container jobs cannot run here; host-process jobs (mode: process) run directly on this machine")
	}
	return executors, stop
}

// devSecrets opens the secrets key at keyFile, default dataDir/secrets.key,
// made when it is missing.
func devSecrets(keyFile, dataDir string) (*secretbox.Box, error) {
	key, err := secretbox.EnsureKeyFile(cmp.Or(keyFile, filepath.Join(dataDir, "secrets.key")))
	if err != nil {
		return nil, err
	}
	return secretbox.New(key)
}

// loadSecrets opens the secrets key from --secrets-key-file or
// JOBGATE_SECRETS_KEY (base64); nil when neither is given.
func loadSecrets(path string, getenv func(string) string) (*secretbox.Box, error) {
	var key []byte
	var err error
	switch {
	case path != "":
		key, err = secretbox.LoadKeyFile(path)
	case getenv("JOBGATE_SECRETS_KEY") != "":
		key, err = secretbox.ParseKey(getenv("JOBGATE_SECRETS_KEY"))
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return secretbox.New(key)
}

// devPodman connects to podman, starting its API service when podman is
// installed and nothing answers. Both results are nil when podman cannot be had.
func devPodman(ctx context.Context, pcfg worker.PodmanConfig, dataDir string, logger *slog.Logger) (*devenv.Service, *worker.PodmanExecutor) {
	var svc *devenv.Service
	if !devenv.PodmanSocketAnswers(ctx, pcfg.URL) {
		var err error
		svc, err = devenv.StartPodmanService(ctx, pcfg.URL, filepath.Join(dataDir, "podman-service.log"))
		if err != nil {
			logger.InfoContext(ctx, "podman service not available", slog.Any("reason", err))
			return nil, nil
		}
		logger.InfoContext(ctx, "started podman service", slog.String("url", pcfg.URL))
	}
	pod, err := worker.NewPodmanExecutor(ctx, pcfg, logger)
	if err != nil {
		logger.WarnContext(ctx, "podman service does not work", slog.Any("error", err))
		svc.Stop()
		return nil, nil
	}
	return svc, pod
}

// devToken returns the admin token: $JOBGATE_TOKEN, else the saved one, else
// a new one printed once and saved with mode 0600.
func devToken(getenv func(string) string, dataDir string, stdout io.Writer) (string, error) {
	if t := getenv("JOBGATE_TOKEN"); t != "" {
		return t, nil
	}
	path := filepath.Join(dataDir, "token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		fmt.Fprintf(stdout, "jobgate dev: admin token in %s\n", path)
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	token := gateway.TokenPrefix + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save token: %w", err)
	}
	fmt.Fprintf(stdout, "jobgate dev: admin token (saved in %s, shown once):\n  %s\n", path, token)
	return token, nil
}

func gatewayCommand(getenv func(string) string, stderr io.Writer) *cobra.Command {
	var redisURL, redisCA, logLevel, secretsKeyFile string
	var gf gatewayFlags
	var ra replicaAcks
	var af artifactFlags
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the REST API and the scheduler (any number, one Redis)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := af.check(); err != nil {
				return err
			}
			stopTelemetry, err := startTelemetry(ctx, "jobgate-gateway", stderr)
			if err != nil {
				return err
			}
			defer stopTelemetry() // last, after every other defer below
			logger, rdb, err := startRedisComponent(ctx, stderr, logLevel, redisURL, redisCA)
			if err != nil {
				return err
			}
			defer rdb.Close()
			box, err := loadSecrets(secretsKeyFile, getenv)
			if err != nil {
				return err
			}
			if box == nil {
				logger.WarnContext(ctx, "no secrets key (--secrets-key-file or JOBGATE_SECRETS_KEY): the secrets API is off")
			}
			gcfg, ccfg, err := gatewayConfig(&gf, getenv("JOBGATE_TOKEN"))
			if err != nil {
				return err
			}
			gcfg.TracerProvider = telemetry.Provider()
			ccfg.TracerProvider = gcfg.TracerProvider
			scfg, err := ra.storeConfig(redisURL)
			if err != nil {
				return err
			}
			st := store.New(rdb, scfg)
			reg := metrics.NewRegistry()
			ccfg.Metrics = metrics.NewControl(reg, st)
			gcfg.Metrics, gcfg.MetricsGatherer = ccfg.Metrics, reg
			plane, err := control.New(ccfg, rdb, st, box, logger)
			if err != nil {
				return err
			}
			arts, err := af.open(ctx)
			if err != nil {
				return err
			}
			gcfg.Around = aroundForTests(ctx, gcfg.Around)
			gw, err := gateway.New(gcfg, rdb, st, arts, box, plane, logger)
			if err != nil {
				return err
			}
			serveMetrics, err := metricsServer(gf.metricsAddr, reg, logger)
			if err != nil {
				return err
			}
			// Deferred above: the Redis client closes once runGateway
			// has stopped every part (the metrics listener last).
			return runBeside(ctx, func(ctx context.Context) error { return runGateway(ctx, gw, plane, nil) }, serveMetrics)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&redisURL, "redis-url", "", redisURLHelp)
	fl.StringVar(&redisCA, "redis-ca-file", "", "CA certificate (PEM) that signed a rediss:// server's certificate")
	af.register(cmd, true, "./.jobgate/artifacts", "workers")
	ra.register(fl)
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&secretsKeyFile, "secrets-key-file", "", "AES-256 key for workspace secrets, base64 (or env JOBGATE_SECRETS_KEY); the workers need the same key")
	fl.StringSliceVar(&gf.allowCallbacks, "allow-callbacks-to", nil, "let completion callbacks reach loopback and/or private addresses (refused by default)")
	fl.DurationVar(&gf.workerLostAfter, "worker-lost-after", 0, "heartbeat silence after which a worker is lost and its running jobs run again elsewhere; the workers' --worker-lost-after must not be longer (default 7s)")
	fl.BoolVar(&gf.hostProcessDefault, "allow-host-process-default", false, "grant the workspace default allow_host_process at start (mode: process jobs; other workspaces get it through PATCH /v1/workspaces/{ws})")
	gf.register(cmd)
	return cmd
}

func workerCommand(getenv func(string) string, stderr io.Writer) *cobra.Command {
	var (
		redisURL, logLevel      string
		secretsKeyFile, redisCA string
		metricsAddr             string
		listGPUs, listJSON      bool
		wf                      workerFlags
		ra                      replicaAcks
		af                      artifactFlags
	)
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run jobs placed on this machine (any number, one Redis)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if listGPUs {
				return printGPUs(ctx, &wf, listJSON, cmd.OutOrStdout())
			}
			wcfg, pcfg, err := workerConfig(&wf)
			if err != nil {
				return err
			}
			if err := af.check(); err != nil {
				return err
			}
			stopTelemetry, err := startTelemetry(ctx, "jobgate-worker", stderr)
			if err != nil {
				return err
			}
			defer stopTelemetry() // last, after every other defer below
			logger, rdb, err := startRedisComponent(ctx, stderr, logLevel, redisURL, redisCA)
			if err != nil {
				return err
			}
			defer rdb.Close()
			if wcfg.GPUs, err = wf.gpus(ctx, logger); err != nil {
				return err
			}
			if wcfg.GPUs != nil {
				defer wcfg.GPUs.Close()
			}
			reg := metrics.NewRegistry()
			wcfg.Metrics = metrics.NewWorker(reg)
			executors := map[api.Mode]worker.Executor{}
			pod, err := worker.NewPodmanExecutor(ctx, pcfg, logger)
			if err != nil {
				return fmt.Errorf("podman: %w (start it with: podman --runtime runc system service --time=0 %s)", err, pcfg.URL)
			}
			executors[api.ModeContainer] = pod
			if wcfg.AllowHostProcess {
				executors[api.ModeProcess] = worker.NewProcessExecutor(worker.ProcessConfig{StopGrace: wcfg.StopGrace}, logger)
				logger.WarnContext(ctx, "host-process jobs allowed: they run as this user on this machine")
			}
			box, err := loadSecrets(secretsKeyFile, getenv)
			if err != nil {
				return err
			}
			wcfg.TracerProvider = telemetry.Provider()
			scfg, err := ra.storeConfig(redisURL)
			if err != nil {
				return err
			}
			arts, err := af.open(ctx)
			if err != nil {
				return err
			}
			wk := worker.New(wcfg, rdb, store.New(rdb, scfg), arts, executors, box, logger)
			serveMetrics, err := metricsServer(metricsAddr, reg, logger)
			if err != nil {
				return err
			}
			return runBeside(ctx, wk.Run, serveMetrics)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&wf.id, "id", "", "worker ID, stable across restarts (default: the hostname)")
	fl.StringVar(&redisURL, "redis-url", "", redisURLHelp)
	fl.StringVar(&redisCA, "redis-ca-file", "", "CA certificate (PEM) that signed a rediss:// server's certificate")
	// The folders' defaults are explicit: the CLI's own, beside the working
	// directory, where worker.Config's are in the temp folder.
	af.register(cmd, true, "./.jobgate/artifacts", "gateways")
	ra.register(fl)
	fl.StringVar(&wf.spoolDir, "spool-dir", "", "folder for logs of running jobs (default: a temp folder)")
	fl.BoolVar(&wf.allowHost, "allow-host-process", false, "also run mode=process jobs directly on this machine")
	fl.BoolVar(&listGPUs, "list-gpus", false, "print this machine's GPUs and exit")
	fl.BoolVar(&listJSON, "json", false, "with --list-gpus: print JSON")
	fl.StringVar(&wf.checkpointDir, "checkpoint-dir", "./.jobgate/checkpoints", "per-job folders that survive attempts (JOBGATE_CHECKPOINT_DIR); share it between workers to resume elsewhere")
	fl.StringVar(&secretsKeyFile, "secrets-key-file", "", "the gateways' secrets key, to give jobs their secrets (or env JOBGATE_SECRETS_KEY)")
	fl.StringVar(&wf.gatewayURL, "gateway-url", "",
		"the API as jobs reach it: given to them as JOBGATE_URL and MLFLOW_TRACKING_URI (default http://127.0.0.1:8080)")
	fl.StringVar(&wf.scoringURL, "scoring-url", "", "the scoring router (jobgate scoring) batch jobs send their rows through; without it this worker fails batch jobs")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&metricsAddr, "metrics-addr", "", metricsAddrUsage)
	wf.register(cmd, "")
	return cmd
}

// printGPUs is `jobgate worker --list-gpus`: the inventory with live use, or
// one line saying there is no NVIDIA driver (exit 0 either way).
func printGPUs(ctx context.Context, wf *workerFlags, asJSON bool, out io.Writer) error {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	inv, err := wf.gpus(ctx, quiet)
	if err != nil {
		return err
	}
	if inv == nil {
		if asJSON {
			fmt.Fprintln(out, `{"gpus": [], "driver": false}`)
			return nil
		}
		fmt.Fprintln(out, "no NVIDIA driver on this machine: no GPUs")
		return nil
	}
	defer inv.Close()
	usage, _ := inv.Usage(ctx)
	if asJSON {
		type row struct {
			gpu.Device
			UtilizationPct *int   `json:"utilization_pct,omitempty"`
			MemoryUsedMB   *int64 `json:"memory_used_mb,omitempty"`
		}
		rows := []row{}
		for _, d := range inv.Devices() {
			r := row{Device: d}
			for _, u := range usage {
				if u.Index == d.Index {
					r.UtilizationPct, r.MemoryUsedMB = &u.UtilizationPct, &u.MemoryUsedMB
				}
			}
			rows = append(rows, r)
		}
		return json.NewEncoder(out).Encode(map[string]any{"gpus": rows, "driver": true})
	}
	return gpu.FormatTable(out, inv.Devices(), usage)
}

// wrapGateway, set by the tests, wraps the API of each gateway that run
// starts in ctx: the end-to-end suite's OpenAPI check
// (internal/openapicheck). Nil outside tests.
var wrapGateway func(ctx context.Context, h http.Handler) http.Handler

// aroundForTests puts wrapGateway, when set, outside around.
func aroundForTests(ctx context.Context, around func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	if wrapGateway == nil {
		return around
	}
	return func(h http.Handler) http.Handler {
		if around != nil {
			h = around(h)
		}
		return wrapGateway(ctx, h)
	}
}
