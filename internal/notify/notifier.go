// Package notify delivers completion callbacks: the ended jobs that asked
// for one are in a Redis stream, read by a consumer group that every gateway
// of a Redis joins.
package notify

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
)

// Config configures a Notifier.
type Config struct {
	// Consumer names this process in the stream's consumer group (the
	// elector's ID). Required.
	Consumer string
	// Sender sends the callbacks: its Policy says which addresses they may
	// reach, its zero value the defaults of webhook.SenderConfig.
	Sender webhook.SenderConfig
	// Metrics counts the callbacks by outcome; nil: off.
	Metrics *metrics.Control
}

// Notifier delivers completion callbacks. Ended jobs that asked for one are
// in a Redis stream read by a consumer group, so every gateway shares the
// work, each ending is delivered by one of them, and one a dead gateway had
// claimed is taken over after a while.
type Notifier struct {
	cfg    Config
	store  *store.Store
	logger *slog.Logger
	sender *webhook.Sender
	// Concurrency bounds deliveries in flight per gateway.
	sem chan struct{}
}

// New returns a Notifier; Run runs it.
func New(cfg Config, st *store.Store, logger *slog.Logger) (*Notifier, error) {
	sender, err := webhook.NewSender(cfg.Sender)
	if err != nil {
		return nil, err
	}
	return &Notifier{cfg: cfg, store: st, logger: logger, sender: sender, sem: make(chan struct{}, 32)}, nil
}

// Run delivers until ctx is done, then waits for deliveries in flight.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	consumer := n.cfg.Consumer
	for ctx.Err() == nil {
		events, err := n.store.ReadEnded(ctx, consumer, 16, 2*time.Second, 10*time.Minute)
		if err != nil {
			if ctx.Err() == nil {
				n.logger.WarnContext(ctx, "read ended jobs", slog.Any("error", err))
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
			continue
		}
		for _, e := range events {
			select {
			case n.sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-n.sem }()
				n.deliver(ctx, e)
			}()
		}
	}
	return nil
}

// deliver posts one callback with retries; each attempt is recorded on the
// job. The event is acknowledged once delivery succeeded or gave up.
func (n *Notifier) deliver(ctx context.Context, e store.EndedEvent) {
	j, err := n.store.GetJobByID(ctx, e.JobID)
	if err != nil || j.Spec.Notify == nil {
		_ = n.store.AckEnded(ctx, e.StreamID)
		return
	}
	typ := "job." + e.Status
	events := j.Spec.Notify.Events
	if len(events) > 0 && !slices.Contains(events, typ) {
		_ = n.store.AckEnded(ctx, e.StreamID)
		return
	}
	nf := *j.Spec.Notify
	job.Redact(&j.Spec)
	body := map[string]any{"type": typ, "job": j}
	if j.Spec.Batch != nil {
		// A batch's caller wants its rows' counts, as GET /v1/batches/{id} has them.
		if b, err := n.store.Batch(ctx, j, time.Now()); err == nil {
			body["batch"] = b
		}
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return
	}
	_, err = n.sender.Deliver(ctx, nf.URL, nf.Secret, "msg_"+j.ID, payload, func(a webhook.Attempt) {
		rec := store.Notification{Attempt: a.Number, Type: typ, At: a.At.UTC(), StatusCode: a.StatusCode, Error: a.Error, DurationMS: a.Duration.Milliseconds()}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := n.store.RecordNotification(rctx, j.ID, rec); err != nil {
			n.logger.WarnContext(ctx, "record callback attempt", slog.String("job_id", j.ID), slog.Any("error", err))
		}
	})
	if ctx.Err() != nil {
		return // shutting down: another gateway (or this one, restarted) takes it over
	}
	n.cfg.Metrics.Callback(j.Workspace, err)
	if err != nil {
		n.logger.WarnContext(ctx, "completion callback failed", slog.String("job_id", j.ID), slog.Any("error", err))
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = n.store.AckEnded(actx, e.StreamID)
}
