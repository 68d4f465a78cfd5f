package cron

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/jobgate/jobgate/internal/store"
)

// traceTick starts the schedule.tick span of firing sc's tick, a new trace,
// when the Cron has a TracerProvider: the job the tick makes is submitted
// under it, so that job's trace begins at the tick. With none, ctx is
// returned as it is, with a no-op span.
func (c *Cron) traceTick(ctx context.Context, sc *store.Schedule, tick time.Time) (context.Context, trace.Span) {
	tp := c.cfg.TracerProvider
	if tp == nil {
		return ctx, noop.Span{}
	}
	return tp.Tracer("github.com/jobgate/jobgate/internal/cron").Start(ctx, "schedule.tick", trace.WithNewRoot(), trace.WithAttributes(
		attribute.String("job.workspace", sc.Workspace), attribute.String("schedule.name", sc.Name),
		attribute.String("schedule.tick", tick.UTC().Format(time.RFC3339))))
}
