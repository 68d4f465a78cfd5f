package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	nettypes "github.com/containers/common/libnetwork/types"
	"github.com/containers/podman/v4/pkg/bindings"
	"github.com/containers/podman/v4/pkg/bindings/containers"
	"github.com/containers/podman/v4/pkg/bindings/images"
	"github.com/containers/podman/v4/pkg/errorhandling"
	"github.com/containers/podman/v4/pkg/specgen"
	spec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Labels on every container PodmanExecutor creates, so Cleanup (and a person
// with `podman ps --filter label=jobgate.job=ID`) can find them.
const (
	LabelJob       = "jobgate.job"
	LabelWorkspace = "jobgate.workspace"
	LabelAttempt   = "jobgate.attempt"
	// LabelStep is set to "preparation" on the container of a job's
	// preparation.
	LabelStep = "jobgate.step"
	// LabelWorker and LabelCluster say whose container it is: the worker
	// that started it and its installation (store.ClusterID). A worker
	// reaps only containers of its own cluster (see Reaper).
	LabelWorker  = "jobgate.worker"
	LabelCluster = "jobgate.cluster"
)

// Pull policies for PodmanConfig.PullPolicy.
const (
	PullMissing = "missing"
	PullNever   = "never"
)

// DefaultPodmanURL is where a rootful `podman system service` listens.
const DefaultPodmanURL = "unix:///run/podman/podman.sock"

// Defaults for PodmanConfig.
const (
	// DefaultPidsLimit is the default PodmanConfig.PidsLimit.
	DefaultPidsLimit = 4096
	// DefaultMemoryMB is the default PodmanConfig.DefaultMemoryMB: 8 GiB.
	DefaultMemoryMB = 8192
)

// containerCaps is every capability a job container running as root has:
// Docker's default set less NET_RAW, MKNOD, AUDIT_WRITE, SYS_CHROOT and
// SETFCAP, which ordinary workloads do not need and which widen what an
// escape can do. All others are dropped; a job running as another user has
// none (see spec).
var containerCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_NET_BIND_SERVICE", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
}

// cleanupTimeout bounds every call made after the attempt's context is done:
// stopping, removing, draining output.
const cleanupTimeout = 10 * time.Second

// PodmanConfig configures a PodmanExecutor. The zero value works against a
// rootful podman service on this machine.
type PodmanConfig struct {
	// URL is the podman API service: unix:///path or tcp://host:port.
	// Default DefaultPodmanURL.
	URL string
	// Network is the network mode of job containers: "host" shares the host's
	// network, "none" gives none, "" is podman's default (its bridge).
	Network string
	// NofileLimit is RLIMIT_NOFILE (soft and hard) inside containers. Default:
	// this process's own soft limit. Podman's built-in default (1048576) fails
	// where the service lacks CAP_SYS_RESOURCE: runc cannot raise a limit
	// above the service's own.
	NofileLimit uint64
	// NprocLimit is RLIMIT_NPROC (soft and hard) inside containers. Default:
	// this process's own soft limit, capped at kernel.pid_max, because podman
	// and conmon run with NPROC lowered to pid_max (measured: 32768), and a
	// higher value makes runc fail with "error setting rlimit type 6".
	NprocLimit uint64
	// StopGrace is how long a stopped workload gets between SIGTERM and
	// SIGKILL. Default DefaultStopGrace.
	StopGrace time.Duration
	// KeepFailed keeps the container of an attempt that exited non-zero or
	// could not start, for `podman logs` and `podman inspect`; Cleanup removes
	// it later.
	KeepFailed bool
	// PullPolicy says when a missing image is pulled: PullMissing (default)
	// pulls an image that is not present, except localhost/ references, which
	// only a local build makes; PullNever never pulls.
	PullPolicy string
	// PidsLimit is the most processes and threads a container may have at
	// once (the pids cgroup), so a fork bomb stops there rather than at the
	// host's limit. Default DefaultPidsLimit (4096); there is no unlimited.
	PidsLimit int64
	// DefaultMemoryMB is the hard memory limit, in MiB, of a job that asks
	// for none (resources.memory_mb unset), so one runaway job cannot take
	// the machine's memory. Default DefaultMemoryMB (8192, 8 GiB).
	DefaultMemoryMB int64
}

// Validate reports a configuration a person has to fix.
func (c PodmanConfig) Validate() error {
	switch c.Network {
	case "", "host", "none":
	default:
		return fmt.Errorf("podman network %q: want host, none or empty (podman's default)", c.Network)
	}
	switch c.PullPolicy {
	case "", PullMissing, PullNever:
	default:
		return fmt.Errorf("podman pull policy %q: want %q or %q", c.PullPolicy, PullMissing, PullNever)
	}
	if c.StopGrace < 0 {
		return fmt.Errorf("podman stop grace %s: must not be negative", c.StopGrace)
	}
	if c.PidsLimit < 0 {
		return fmt.Errorf("podman pids limit %d: must not be negative (0 means the default, %d)", c.PidsLimit, DefaultPidsLimit)
	}
	if c.DefaultMemoryMB < 0 {
		return fmt.Errorf("podman default memory %d MiB: must not be negative (0 means the default, %d)", c.DefaultMemoryMB, DefaultMemoryMB)
	}
	return nil
}

func (c PodmanConfig) withDefaults() PodmanConfig {
	c.URL = cmp.Or(c.URL, DefaultPodmanURL)
	c.PullPolicy = cmp.Or(c.PullPolicy, PullMissing)
	c.StopGrace = cmp.Or(c.StopGrace, DefaultStopGrace)
	c.NofileLimit = cmp.Or(c.NofileLimit, softLimit(unix.RLIMIT_NOFILE))
	c.NprocLimit = cmp.Or(c.NprocLimit, min(softLimit(unix.RLIMIT_NPROC), pidMax()))
	c.PidsLimit = cmp.Or(c.PidsLimit, DefaultPidsLimit)
	c.DefaultMemoryMB = cmp.Or(c.DefaultMemoryMB, DefaultMemoryMB)
	return c
}

// softLimit is this process's soft limit for resource r, or 0 (podman's
// default) when it cannot be read or is unlimited.
func softLimit(r int) uint64 {
	var l unix.Rlimit
	if err := unix.Getrlimit(r, &l); err != nil || l.Cur == unix.RLIM_INFINITY {
		return 0
	}
	return l.Cur
}

func pidMax() uint64 {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		return math.MaxUint64
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return math.MaxUint64
	}
	return n
}

// PodmanExecutor runs each attempt in its own podman container, through the
// podman v4 API bindings. It is safe for concurrent use.
type PodmanExecutor struct {
	cfg    PodmanConfig
	logger *slog.Logger
	// conn carries the bindings' client. The bindings find their client in a
	// context value under an unexported key, so the connection has to live in
	// a context; bind lays each caller's context over it. It holds no
	// deadline and is never canceled.
	conn context.Context
}

var (
	_ Executor = (*PodmanExecutor)(nil)
	_ Reaper   = (*PodmanExecutor)(nil)
)

// NewPodmanExecutor connects to the podman service at cfg.URL and returns an
// executor using it. It fails when the configuration is invalid or the service
// does not answer.
func NewPodmanExecutor(ctx context.Context, cfg PodmanConfig, logger *slog.Logger) (*PodmanExecutor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	conn, err := connect(ctx, cfg.URL)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &PodmanExecutor{cfg: cfg, logger: logger.With(slog.String("executor", "podman")), conn: conn}, nil
}

// connect opens a bindings connection to url and pings it, within ctx and at
// most 10 seconds, so a service that accepts but never answers fails too.
func connect(ctx context.Context, url string) (context.Context, error) {
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := bindings.NewConnection(pingCtx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to podman service at %s (is `podman system service` running?): %w", url, err)
	}
	// Keep the bindings' values, drop the ping's deadline.
	return context.WithoutCancel(conn), nil
}

// publishesPorts: containers on podman's bridge have a network of their
// own, so a service job's port is published on the host (see
// portPublisher); with host networking the server binds the host's.
func (p *PodmanExecutor) publishesPorts() bool { return p.cfg.Network == "" }

var _ portPublisher = (*PodmanExecutor)(nil)

// Name returns "podman".
func (p *PodmanExecutor) Name() string { return "podman" }

// bind returns ctx carrying the executor's podman connection.
func (p *PodmanExecutor) bind(ctx context.Context) context.Context {
	return boundContext{Context: ctx, conn: p.conn}
}

// boundContext has its embedded context's deadline, cancellation and values,
// except that the bindings' own values come from conn.
type boundContext struct {
	context.Context
	conn context.Context
}

func (b boundContext) Value(key any) any {
	if v := b.conn.Value(key); v != nil {
		return v
	}
	return b.Context.Value(key)
}

// workloadPID is the host PID of the first process of the container
// running attempt number of jobID's command; 0 while it is not running.
func (p *PodmanExecutor) workloadPID(ctx context.Context, jobID string, number int) (int, error) {
	info, err := containers.Inspect(p.bind(ctx), ContainerName(jobID, number), nil)
	var apiErr *errorhandling.ErrorModel
	if errors.As(err, &apiErr) && apiErr.ResponseCode == http.StatusNotFound {
		return 0, nil // not created yet, or gone
	}
	if err != nil {
		return 0, fmt.Errorf("inspect container %s: %w", ContainerName(jobID, number), err)
	}
	if info.State == nil || !info.State.Running {
		return 0, nil
	}
	return info.State.Pid, nil
}

// ContainerName is the name of the container running attempt number of jobID.
func ContainerName(jobID string, number int) string {
	return fmt.Sprintf("jobgate-%s-%d", jobID, number)
}

// PreparationContainerName is the name of the container running the
// preparation of attempt number of jobID.
func PreparationContainerName(jobID string, number int) string {
	return ContainerName(jobID, number) + "-prep"
}

// Run runs the attempt in a new container and removes it afterwards (unless
// KeepFailed and it failed). See Executor for the contract; a missing image
// wraps ErrImageNotFound, a container podman cannot create or start (an
// unknown command, a bad option) wraps ErrStart with podman's message.
func (p *PodmanExecutor) Run(ctx context.Context, a Attempt, stdout, stderr io.Writer) (out Outcome, err error) {
	name := ContainerName(a.JobID, a.Number)
	if a.Step == StepPreparation {
		name = PreparationContainerName(a.JobID, a.Number)
	}
	log := p.logger.With(slog.String("job_id", a.JobID), slog.Int("attempt", a.Number), slog.String("container", name))
	if len(a.Argv()) == 0 {
		return Outcome{}, fmt.Errorf("%w: empty command", ErrStart)
	}
	if err := p.ensureImage(ctx, a.Spec.Image); err != nil {
		return Outcome{}, err
	}

	id, err := p.create(ctx, a, name)
	if err != nil {
		return Outcome{}, err
	}
	defer func() {
		keep := p.cfg.KeepFailed && (errors.Is(err, ErrStart) || (err == nil && out.ExitCode != 0))
		if keep {
			log.InfoContext(ctx, "keeping failed container", slog.Int("exit_code", out.ExitCode))
			return
		}
		p.remove(ctx, log, id)
	}()
	return p.run(ctx, log, id, p.grace(a), stdout, stderr)
}

// ensureImage makes sure image is present locally, pulling it if the policy
// allows.
func (p *PodmanExecutor) ensureImage(ctx context.Context, image string) error {
	if image == "" {
		return fmt.Errorf("%w: no image given", ErrImageNotFound)
	}
	ok, err := images.Exists(p.bind(ctx), image, nil)
	if err != nil {
		return fmt.Errorf("look up image %q: %w", image, err)
	}
	if ok {
		return nil
	}
	// A localhost/ image only ever comes from a local build; pulling it
	// would only wait for a registry that cannot have it.
	if p.cfg.PullPolicy == PullNever || strings.HasPrefix(image, "localhost/") {
		return fmt.Errorf("%w: %s is not present locally (pull policy %s)", ErrImageNotFound, image, p.cfg.PullPolicy)
	}
	if _, err := images.Pull(p.bind(ctx), image, new(images.PullOptions).WithQuiet(true).WithPolicy(PullMissing)); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull image %q: %w", image, ctx.Err())
		}
		// Whether the registry lacks it or cannot be reached, this attempt
		// cannot run; a later job can pull again.
		return fmt.Errorf("%w: pull %s: %v", ErrImageNotFound, image, err)
	}
	return nil
}

// spec is the container for attempt a. It is hardened whatever the job
// asks: not privileged, no new privileges (setuid binaries and file
// capabilities grant nothing), at most containerCaps, a pids limit and a
// memory limit.
func (p *PodmanExecutor) spec(a Attempt, name string) *specgen.SpecGenerator {
	s := specgen.NewSpecGenerator(a.Spec.Image, false)
	s.Name = name
	// The argv replaces the image's ENTRYPOINT and CMD both, as a
	// Kubernetes command does: with an entrypoint set, podman ignores CMD.
	argv := a.Argv()
	s.Entrypoint = argv[:1]
	s.Command = argv[1:]
	s.Env = a.Env
	// Empty is the image's own working directory.
	s.WorkDir = a.WorkDir
	s.Labels = map[string]string{
		LabelJob:       a.JobID,
		LabelWorkspace: a.Workspace,
		LabelAttempt:   strconv.Itoa(a.Number),
	}
	if a.Step != StepCommand {
		s.Labels[LabelStep] = string(a.Step)
	}
	if a.Worker != "" {
		s.Labels[LabelWorker] = a.Worker
	}
	if a.Cluster != "" {
		s.Labels[LabelCluster] = a.Cluster
	}
	s.Privileged = false
	s.NoNewPrivileges = true
	s.CapDrop = []string{"ALL"}
	// Podman makes what CapAdd names effective and ambient for a User
	// other than root (measured on podman 4.3: uid 1234 held all of
	// containerCaps), which is more than Docker gives a non-root user
	// (none effective). Such a user gets no capability instead; under no new
	// privileges it could never have raised one from the bounding set.
	if runsAsRoot(a.Spec.User) {
		s.CapAdd = containerCaps
	}
	// Empty runs as the image's user (root when it names none).
	s.User = a.Spec.User
	if a.Spec.ReadOnlyRootfs {
		s.ReadOnlyFilesystem = true
		// Newer services mount tmpfs on /tmp, /var/tmp and /run for this
		// and keep /dev/shm writable, as `podman run --read-only` does;
		// podman 4.3 ignores the flag (measured: no /tmp), so /tmp is
		// mounted here too.
		s.ReadWriteTmpfs = true
		s.Mounts = append(s.Mounts, spec.Mount{
			Destination: "/tmp",
			Type:        "tmpfs",
			Source:      "tmpfs",
			Options:     []string{"rw", "nosuid", "nodev"},
		})
	}
	s.Terminal = false
	stopSecs := uint(math.Ceil(p.grace(a).Seconds()))
	s.StopTimeout = &stopSecs
	switch p.cfg.Network {
	case "host":
		s.NetNS = specgen.Namespace{NSMode: specgen.Host}
	case "none":
		s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	}
	if p.publishesPorts() {
		for _, pt := range a.Ports {
			s.PortMappings = append(s.PortMappings, nettypes.PortMapping{HostIP: pt.HostIP, HostPort: uint16(pt.HostPort),
				ContainerPort: uint16(pt.ContainerPort), Protocol: "tcp"})
		}
	}
	for _, d := range a.Devices {
		s.Devices = append(s.Devices, spec.LinuxDevice{Path: d})
	}
	for _, m := range a.Mounts {
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		s.Mounts = append(s.Mounts, spec.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: []string{"rbind", opt}})
	}
	// Short names: the service prefixes "RLIMIT_" itself.
	s.Rlimits = []spec.POSIXRlimit{
		{Type: "nofile", Soft: p.cfg.NofileLimit, Hard: p.cfg.NofileLimit},
		{Type: "nproc", Soft: p.cfg.NprocLimit, Hard: p.cfg.NprocLimit},
	}
	r := a.Spec.Resources
	s.ResourceLimits = &spec.LinuxResources{Pids: &spec.LinuxPids{Limit: p.cfg.PidsLimit}}
	if r.CPUs > 0 {
		period := uint64(100_000)
		quota := int64(math.Ceil(r.CPUs * float64(period)))
		s.ResourceLimits.CPU = &spec.LinuxCPU{Period: &period, Quota: &quota}
	}
	// Memory+swap equal to memory: a hard limit, no swapping past it.
	// Podman drops the swap part where the kernel does not account swap.
	limit := cmp.Or(max(r.MemoryMB, 0), p.cfg.DefaultMemoryMB) << 20
	s.ResourceLimits.Memory = &spec.LinuxMemory{Limit: &limit, Swap: &limit}
	return s
}

// runsAsRoot reports whether user (a JobSpec.User) is root, or empty: the
// image's user, which podman too treats as root when granting capabilities.
func runsAsRoot(user string) bool {
	name, _, _ := strings.Cut(user, ":")
	return name == "" || name == "root" || name == "0"
}

// create creates the attempt's container and returns its ID.
func (p *PodmanExecutor) create(ctx context.Context, a Attempt, name string) (string, error) {
	// Not canceled with ctx: a create interrupted halfway may still leave a
	// container behind whose ID we would not know.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	resp, err := containers.CreateWithSpec(p.bind(cctx), p.spec(a, name), nil)
	if err != nil {
		var apiErr *errorhandling.ErrorModel
		switch {
		case errors.As(err, &apiErr) && apiErr.ResponseCode == http.StatusConflict:
			// Left by a worker that crashed mid-attempt; a retry after
			// Cleanup will do.
			return "", fmt.Errorf("create container %s: %w (Cleanup removes leftovers)", name, err)
		case errors.As(err, &apiErr) && apiErr.ResponseCode == http.StatusNotFound:
			// The image went away between the check and the create.
			return "", fmt.Errorf("%w: %s: %v", ErrImageNotFound, a.Spec.Image, err)
		case errors.As(err, &apiErr):
			return "", fmt.Errorf("%w: create container %s: %v", ErrStart, name, err)
		}
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		p.remove(ctx, p.logger, resp.ID)
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	return resp.ID, nil
}

type waitResult struct {
	code int32
	err  error
}

// run attaches to container id, starts it, and waits for it to exit and for
// its output to be written; when ctx is done first it stops the container
// with grace.
func (p *PodmanExecutor) run(ctx context.Context, log *slog.Logger, id string, grace time.Duration, stdout, stderr io.Writer) (Outcome, error) {
	att, err := p.attach(ctx, id, stdout, stderr)
	if err != nil {
		return Outcome{}, err
	}
	defer att.close()

	// Started even when ctx is done by now: from here on a canceled attempt
	// goes through the stop sequence and reports what it observed.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	err = containers.Start(p.bind(sctx), id, nil)
	cancel()
	if err != nil {
		return Outcome{}, startError("start container", err)
	}
	log.DebugContext(ctx, "container started")

	wctx, cancelWait := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWait()
	exited := make(chan waitResult, 1)
	go func() {
		// The service polls the container's state at this interval.
		code, err := containers.Wait(p.bind(wctx), id, new(containers.WaitOptions).WithInterval("100ms"))
		exited <- waitResult{code, err}
	}()
	var res waitResult
	select {
	case res = <-exited:
	case <-ctx.Done():
		res = p.stop(ctx, log, id, grace, exited)
	}
	if res.err != nil {
		return Outcome{}, fmt.Errorf("wait for container %s: %w", id, res.err)
	}
	// All output has been produced; give the stream a bounded time to
	// arrive, so a wedged connection cannot hold the attempt forever.
	if err := att.wait(cleanupTimeout); err != nil {
		log.WarnContext(ctx, "container output may be incomplete", slog.Any("error", err))
	}
	return Outcome{ExitCode: int(res.code)}, nil
}

// grace is how long a's workload gets between SIGTERM and SIGKILL.
func (p *PodmanExecutor) grace(a Attempt) time.Duration { return cmp.Or(a.StopGrace, p.cfg.StopGrace) }

// stop sends SIGTERM, waits grace for the container to exit, then sends
// SIGKILL, and returns how it exited.
func (p *PodmanExecutor) stop(ctx context.Context, log *slog.Logger, id string, grace time.Duration, exited <-chan waitResult) waitResult {
	grace = fencedGrace(ctx, grace)
	log.InfoContext(ctx, "stopping container", slog.Duration("grace", grace), slog.Any("cause", context.Cause(ctx)))
	p.kill(ctx, log, id, "SIGTERM")
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case res := <-exited:
		return res
	case <-timer.C:
	}
	p.kill(ctx, log, id, "SIGKILL")
	select {
	case res := <-exited:
		return res
	case <-time.After(cleanupTimeout):
		return waitResult{err: fmt.Errorf("container %s still running %s after SIGKILL", id, cleanupTimeout)}
	}
}

func (p *PodmanExecutor) kill(ctx context.Context, log *slog.Logger, id, signal string) {
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// An error is most often "container not running": it exited meanwhile,
	// which the Wait in flight reports.
	if err := containers.Kill(p.bind(kctx), id, new(containers.KillOptions).WithSignal(signal)); err != nil {
		log.DebugContext(ctx, "kill container", slog.String("signal", signal), slog.Any("error", err))
	}
}

func (p *PodmanExecutor) remove(ctx context.Context, log *slog.Logger, id string) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	opts := new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true).WithTimeout(0)
	if _, err := containers.Remove(p.bind(rctx), id, opts); err != nil {
		log.WarnContext(ctx, "remove container", slog.String("container_id", id), slog.Any("error", err))
	}
}

// Cleanup force-removes every container labelled with jobID, running or not.
func (p *PodmanExecutor) Cleanup(ctx context.Context, jobID string) error {
	list, err := containers.List(p.bind(ctx), new(containers.ListOptions).WithAll(true).
		WithFilters(map[string][]string{"label": {LabelJob + "=" + jobID}}))
	if err != nil {
		return fmt.Errorf("list containers of job %s: %w", jobID, err)
	}
	var errs []error
	opts := new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true).WithTimeout(0)
	for _, c := range list {
		if c.Labels[LabelJob] != jobID {
			continue // Belt and braces: never remove what is not ours.
		}
		if _, err := containers.Remove(p.bind(ctx), c.ID, opts); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
			continue
		}
		p.logger.InfoContext(ctx, "removed leftover container", slog.String("job_id", jobID), slog.String("container_id", c.ID))
	}
	return errors.Join(errs...)
}

// Workloads lists the containers labelled with cluster. With KeepFailed the
// exited ones are left out: they are kept for a person to look at, and
// Cleanup removes them at the job's next attempt.
func (p *PodmanExecutor) Workloads(ctx context.Context, cluster string) ([]Workload, error) {
	if cluster == "" {
		return nil, nil
	}
	list, err := containers.List(p.bind(ctx), new(containers.ListOptions).WithAll(true).
		WithFilters(map[string][]string{"label": {LabelCluster + "=" + cluster}}))
	if err != nil {
		return nil, fmt.Errorf("list containers of cluster %s: %w", cluster, err)
	}
	out := make([]Workload, 0, len(list))
	for _, c := range list {
		if c.Labels[LabelCluster] != cluster || c.Labels[LabelJob] == "" {
			continue // Belt and braces: never touch what is not ours.
		}
		if p.cfg.KeepFailed && c.Exited {
			continue
		}
		n, _ := strconv.Atoi(c.Labels[LabelAttempt])
		out = append(out, Workload{ID: c.ID, JobID: c.Labels[LabelJob], Attempt: n, Worker: c.Labels[LabelWorker],
			Running: c.State == "running"})
	}
	return out, nil
}

// Remove force-removes container wl.ID (SIGKILL if it runs).
func (p *PodmanExecutor) Remove(ctx context.Context, wl Workload) error {
	opts := new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true).WithTimeout(0)
	if _, err := containers.Remove(p.bind(ctx), wl.ID, opts); err != nil {
		return fmt.Errorf("remove container %s: %w", wl.ID, err)
	}
	return nil
}

// startError wraps err with ErrStart when the service refused (podman and the
// runtime's message is in err); a failure to reach the service stays
// retryable.
func startError(what string, err error) error {
	var apiErr *errorhandling.ErrorModel
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%w: %s: %v", ErrStart, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// attachment is an output stream from a container, attached before it starts.
type attachment struct {
	// done is closed when containers.Attach has returned, with err set.
	done  chan struct{}
	err   error
	conns *connSet
}

// attach attaches stdout and stderr to container id and returns once the
// service is streaming, so that nothing the container writes after Start is
// lost.
//
// It uses a connection of its own: containers.Attach replaces the HTTP
// transport of the connection it is given, which would race with every other
// call on a shared one, and it reads a socket that only closing can
// interrupt; connSet records those sockets so that close can.
func (p *PodmanExecutor) attach(ctx context.Context, id string, stdout, stderr io.Writer) (*attachment, error) {
	conn, err := connect(ctx, p.cfg.URL)
	if err != nil {
		return nil, err
	}
	conns := &connSet{}
	if err := conns.install(conn); err != nil {
		return nil, err
	}
	att := &attachment{done: make(chan struct{}), conns: conns}
	ready := make(chan bool, 1)
	// Not bound to ctx: after a cancel the stream must go on carrying what
	// the workload says while it stops; close ends it instead.
	actx := boundContext{Context: context.WithoutCancel(ctx), conn: conn}
	out, errOut := &streamWriter{w: stdout}, &streamWriter{w: stderr}
	go func() {
		defer close(att.done)
		err := containers.Attach(actx, id, nil, out, errOut, ready, new(containers.AttachOptions).WithStream(true).WithLogs(false))
		att.err = cmp.Or(err, out.err, errOut.err)
	}()
	select {
	case <-ready:
		return att, nil
	case <-att.done:
		conns.closeAll()
		if att.err == nil {
			// Cannot happen with a service that streams until the container
			// exits; retrying is the best answer if it does.
			return nil, errors.New("attach to container: stream ended before the container started")
		}
		// The service creates the container in the runtime when attaching,
		// so a command that is not in the image fails here (runc checks
		// the executable at create time).
		return nil, startError("attach to container", att.err)
	case <-ctx.Done():
		att.close()
		return nil, fmt.Errorf("attach to container: %w", ctx.Err())
	}
}

// wait waits up to timeout for the stream to end.
func (a *attachment) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-a.done:
		return a.err
	case <-t.C:
		return fmt.Errorf("output stream still open %s after the container exited", timeout)
	}
}

// close ends the stream and waits until Attach has returned, so that no
// write to the output writers happens after Run.
func (a *attachment) close() {
	a.conns.closeAll()
	<-a.done
}

// streamWriter passes a container's output on to w. It is always a pointer,
// because containers.Attach calls reflect's IsNil on its writers, which
// panics for a struct value such as io.Discard. After w fails it drops the
// rest and remembers the error: Attach would stop reading on an error, and a
// container whose output nobody reads blocks.
type streamWriter struct {
	w   io.Writer
	err error
}

func (s *streamWriter) Write(b []byte) (int, error) {
	if s.err == nil && s.w != nil {
		_, s.err = s.w.Write(b)
	}
	return len(b), nil
}

// connSet records every socket a connection dials, so they can be closed:
// the hijacked attach socket and the idle keep-alive ones, which would
// otherwise leak one per attempt.
type connSet struct {
	// mu guards the fields below.
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// install makes the bindings connection in ctx dial through the set.
func (s *connSet) install(ctx context.Context) error {
	c, err := bindings.GetClient(ctx)
	if err != nil {
		return err
	}
	tr, ok := c.Client.Transport.(*http.Transport)
	if !ok {
		return fmt.Errorf("podman connection: unexpected transport %T", c.Client.Transport)
	}
	dial := tr.DialContext
	tr = tr.Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			conn.Close()
			return nil, net.ErrClosed
		}
		s.conns = append(s.conns, conn)
		return conn, nil
	}
	c.Client.Transport = tr
	return nil
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}
