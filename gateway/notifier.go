package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
)

// notifier delivers completion callbacks. Ended jobs that asked for one are
// in a Redis stream read by a consumer group, so every gateway shares the
// work, each ending is delivered by one of them, and one a dead gateway had
// claimed is taken over after a while.
type notifier struct {
	g      *Gateway
	sender *webhook.Sender
	// Concurrency bounds deliveries in flight per gateway.
	sem chan struct{}
}

func newNotifier(g *Gateway, cfg webhook.SenderConfig) (*notifier, error) {
	cfg.Policy = g.cfg.CallbackPolicy
	sender, err := webhook.NewSender(cfg)
	if err != nil {
		return nil, err
	}
	return &notifier{g: g, sender: sender, sem: make(chan struct{}, 32)}, nil
}

// Run delivers until ctx is done, then waits for deliveries in flight.
func (n *notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	consumer := n.g.cfg.SchedulerID
	for ctx.Err() == nil {
		events, err := n.g.store.ReadEnded(ctx, consumer, 16, 2*time.Second, 10*time.Minute)
		if err != nil {
			if ctx.Err() == nil {
				n.g.logger.WarnContext(ctx, "read ended jobs", slog.Any("error", err))
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
func (n *notifier) deliver(ctx context.Context, e store.EndedEvent) {
	job, err := n.g.store.GetJobByID(ctx, e.JobID)
	if err != nil || job.Spec.Notify == nil {
		_ = n.g.store.AckEnded(ctx, e.StreamID)
		return
	}
	typ := "job." + e.Status
	events := job.Spec.Notify.Events
	if len(events) > 0 && !slices.Contains(events, typ) {
		_ = n.g.store.AckEnded(ctx, e.StreamID)
		return
	}
	nf := *job.Spec.Notify
	redactSpec(&job.Spec)
	payload, err := json.Marshal(map[string]any{"type": typ, "job": job})
	if err != nil {
		return
	}
	_, err = n.sender.Deliver(ctx, nf.URL, nf.Secret, "msg_"+job.ID, payload, func(a webhook.Attempt) {
		rec := store.Notification{Attempt: a.Number, Type: typ, At: a.At.UTC(), StatusCode: a.StatusCode, Error: a.Error, DurationMS: a.Duration.Milliseconds()}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := n.g.store.RecordNotification(rctx, job.ID, rec); err != nil {
			n.g.logger.WarnContext(ctx, "record callback attempt", slog.String("job_id", job.ID), slog.Any("error", err))
		}
	})
	if ctx.Err() != nil {
		return // shutting down: another gateway (or this one, restarted) takes it over
	}
	if err != nil {
		n.g.logger.WarnContext(ctx, "completion callback failed", slog.String("job_id", job.ID), slog.Any("error", err))
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = n.g.store.AckEnded(actx, e.StreamID)
}
