// Package control builds the control plane of a gateway process: the job
// service every submitter goes through, the one leader elector, and the
// components that run beside the HTTP API (placement, the cron loop, the
// deployment controller, the callback notifier, the log hub). New is the one place they are made and
// wired to each other, for `jobgate gateway`, `jobgate dev` and the tests
// alike; cmd/jobgate runs them (each has Run(ctx) error) in the order its
// shutdown needs, and gateway/ reads from them, never running them.
package control

import (
	"cmp"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/jobgate/jobgate/internal/cron"
	"github.com/jobgate/jobgate/internal/deploy"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/loghub"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/notify"
	"github.com/jobgate/jobgate/internal/placement"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/sweep"
	"github.com/jobgate/jobgate/internal/webhook"
)

// Config configures a gateway process's control plane. Zero values get the
// defaults on each field.
type Config struct {
	// Metrics is the process's control-plane metric set, given to the job
	// service, placement and the notifier; nil: off.
	Metrics *metrics.Control
	// ID names this process in the leader election, the callbacks' consumer
	// group and the schedules' tick claims; default host-pid.
	ID string
	// WorkerLostAfter is the heartbeat silence after which a worker's jobs
	// are recovered; default 15s (placement.Config).
	WorkerLostAfter time.Duration
	// Limits bound what a job spec may ask for; defaults in job.Limits.
	Limits job.Limits
	// CallbackPolicy says which addresses completion callbacks may reach;
	// the zero value refuses loopback, link-local and private addresses
	// (`jobgate dev` allows loopback).
	CallbackPolicy webhook.AddressPolicy
	// Now is the clock of the job service and the cron loop; default
	// time.Now.
	Now func() time.Time
	// TracerProvider, when set, traces the job path: the submit, the
	// placement and the schedule ticks (each component's Config); nil
	// traces nothing.
	TracerProvider trace.TracerProvider
}

// Plane is a gateway process's control plane. Run each component (all but
// Jobs) for as long as the process serves; cmd/jobgate says in what order
// they stop.
type Plane struct {
	// Jobs is the job service: the API, triggers and schedules submit and
	// cancel through it.
	Jobs *job.Service
	// Elector is the process's one leader election; Placement and Cron
	// subscribe to it. Stop it last: it gives up the lease.
	Elector *leader.Elector
	// Placement places queued jobs on workers while this process leads; the
	// workers view reads its WorkerState.
	Placement *placement.Scheduler
	// Cron fires schedules while this process leads; the schedule API's
	// "run now" fires through its Lock and Start.
	Cron *cron.Cron
	// Deploy keeps the deployments' replicas running while this process
	// leads.
	Deploy *deploy.Controller
	// Sweeps makes the sweeps' trials and stops them early; its loop runs
	// while this process leads.
	Sweeps *sweep.Controller
	// Notifier delivers completion callbacks.
	Notifier *notify.Notifier
	// Logs wakes the API's log followers.
	Logs *loghub.Hub
}

// New makes the control plane over rdb and st. secrets is the secrets key
// the gateway holds, nil for none: then jobs that name secrets are refused.
func New(cfg Config, rdb redis.UniversalClient, st *store.Store, secrets *secretbox.Box, logger *slog.Logger) (*Plane, error) {
	host, _ := os.Hostname()
	cfg.ID = cmp.Or(cfg.ID, fmt.Sprintf("%s-%d", host, os.Getpid()))
	p := &Plane{
		Jobs:    job.New(job.Config{Limits: cfg.Limits, CallbackPolicy: cfg.CallbackPolicy, Secrets: secrets != nil, Now: cfg.Now, Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider}, rdb, st, logger),
		Elector: leader.New(leader.Config{ID: cfg.ID}, st, logger),
		Logs:    loghub.New(rdb, logger),
	}
	p.Placement = placement.New(placement.Config{ID: cfg.ID, WorkerLostAfter: cfg.WorkerLostAfter, Metrics: cfg.Metrics, TracerProvider: cfg.TracerProvider}, p.Elector,
		rdb, st, asynq.NewClientFromRedisClient(rdb), logger)
	p.Cron = cron.New(cron.Config{ID: cfg.ID, Now: cfg.Now, TracerProvider: cfg.TracerProvider}, p.Elector, st, p.Jobs, logger)
	p.Deploy = deploy.New(deploy.Config{}, p.Elector, rdb, st, p.Jobs, logger)
	p.Sweeps = sweep.NewController(p.Elector, st, p.Jobs, cfg.Now, logger)
	var err error
	if p.Notifier, err = notify.New(notify.Config{Consumer: cfg.ID, Sender: webhook.SenderConfig{Policy: cfg.CallbackPolicy}, Metrics: cfg.Metrics}, st, logger); err != nil {
		return nil, err
	}
	return p, nil
}
