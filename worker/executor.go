package worker

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/jobgate/jobgate/api"
)

// Attempt is everything an executor needs to run one attempt of a job.
type Attempt struct {
	JobID     string
	Workspace string
	// Number is the 1-based attempt number.
	Number int
	Spec   api.JobSpec
	// Env is the full environment for the workload: the spec's env with
	// jobgate's own variables (JOBGATE_JOB_ID, ...) set over it.
	Env map[string]string
	// Devices are CDI device names to inject into a container, such as
	// "nvidia.com/gpu=0". Process executors ignore them.
	Devices []string
	// Mounts are host folders to bind into a container. Process executors
	// ignore them (the workload sees the host's paths through Env).
	Mounts []Mount
	// Ports are published on the host for a container with a network of
	// its own (a service job's port, see portPublisher); others ignore them.
	Ports []Port
	// WorkDir is the workload's working directory as the workload sees it
	// (a container path, or a host path for a process); empty leaves it to
	// the executor. The worker gives every attempt one (JOBGATE_WORKDIR).
	WorkDir string
	// Step says which of the spec's argvs this run is: StepCommand or
	// StepPreparation.
	Step Step
	// Worker and Cluster say whose workload this is (the worker's ID and
	// the installation's, see store.ClusterID); executors whose workloads
	// can outlive the worker label them with both, for a Reaper.
	Worker, Cluster string
	// StopGrace is the time the workload gets between SIGTERM and SIGKILL
	// when it is stopped: the task's (see queue.RunJobPayload). Zero leaves
	// the executor's own (its config's StopGrace).
	StopGrace time.Duration
}

// Step is one run of an attempt: its preparation, then its command.
type Step string

const (
	// StepCommand runs Spec.Command; the zero Step.
	StepCommand Step = ""
	// StepPreparation runs Spec.Preparation.
	StepPreparation Step = "preparation"
)

// Argv is the argv this run executes: Spec.Preparation for StepPreparation,
// else Spec.Command.
func (a Attempt) Argv() []string {
	if a.Step == StepPreparation {
		return a.Spec.Preparation
	}
	return a.Spec.Command
}

// Mount binds a host folder into a container.
type Mount struct {
	Source, Target string
	ReadOnly       bool
}

// Port publishes a container's TCP port on the host.
type Port struct {
	HostIP                  string
	HostPort, ContainerPort int
}

// Outcome is how an attempt's workload ended.
type Outcome struct {
	// ExitCode is the workload's exit status; for a process killed by a signal
	// it is 128+signal, as a shell reports it.
	ExitCode int
}

// ErrImageNotFound means the image is not present locally and cannot be pulled;
// retrying will not help. Executors wrap it with the image name.
var ErrImageNotFound = errors.New("image not found")

// ErrStart means the workload could not be created or started (bad command,
// bad option); retrying will not help. Executors wrap it with the cause.
var ErrStart = errors.New("start failed")

// Executor runs one attempt of a job to completion.
//
// Run writes the workload's stdout and stderr to the given writers, in order,
// and returns after the workload ended and all its output was written. When
// ctx is done before the workload ends, Run stops it gracefully: SIGTERM, then
// SIGKILL once the attempt's StopGrace (or else the executor's own) has
// passed; it then returns the Outcome it observed and a nil error. Every container or process group Run
// created is gone when it returns (unless the executor is configured to keep
// failed containers). An error means the workload could not be run at all:
// ErrImageNotFound and ErrStart are permanent, anything else may be retried.
type Executor interface {
	Run(ctx context.Context, a Attempt, stdout, stderr io.Writer) (Outcome, error)
	// Cleanup removes whatever an earlier run of jobID (for example in a worker
	// process that crashed) left behind. It is safe to call when there is none.
	Cleanup(ctx context.Context, jobID string) error
	// Name says which executor this is, for logs and the worker registry.
	Name() string
}

// DefaultStopGrace is how long a stopped workload gets between SIGTERM and SIGKILL.
const DefaultStopGrace = 5 * time.Second

// Execer is implemented by executors that can run another command beside a
// running attempt's workload (`jobgate exec`): in its container, or as a host
// process with its environment and working folder.
//
// Exec runs argv and returns its exit status once it ended and its output was
// written to o's writers (in order within each). When ctx is done first, Exec
// stops the command as far as the executor can and returns the status it
// observed, or an error saying why it could not. ErrNotRunning means attempt
// number of jobID is not running here (not yet, or no longer), and comes
// before o.Started is called; ErrStart that the command could not be started.
type Execer interface {
	Exec(ctx context.Context, jobID string, number int, argv []string, o ExecIO) (int, error)
}

// ExecIO is where an exec's output goes, and who learns that it started.
type ExecIO struct {
	// Stdout and Stderr receive the command's output; nil discards.
	Stdout, Stderr io.Writer
	// Started, when set, is called once the command is about to run, before
	// any output: past the checks that fail with ErrNotRunning.
	Started func()
}

func (o ExecIO) started() {
	if o.Started != nil {
		o.Started()
	}
}

// ErrNotRunning means an exec found no running attempt to run beside.
var ErrNotRunning = errors.New("attempt not running here")
