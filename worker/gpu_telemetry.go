package worker

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/jobgate/jobgate/internal/gpu"
	"github.com/jobgate/jobgate/internal/store"
)

// gpuJob is a running job's share of the worker's GPUs, for telemetry.
type gpuJob struct {
	indexes []int
	samples int64
}

// sampleGPUs reads the GPUs' utilization and memory every GPUSampleEvery
// until ctx is done: into the worker registry (GET /v1/workers) and, for
// each running job, into its metrics gpu_utilization (mean % over its GPUs)
// and gpu_memory_used_mb (summed), one step per sample.
func (w *Worker) sampleGPUs(ctx context.Context) {
	gpu.Sample(ctx, w.cfg.GPUs, w.cfg.GPUSampleEvery, nil, func(us []gpu.Usage) {
		now := w.now().UTC()
		if b, err := json.Marshal(us); err == nil {
			if err := w.store.SetWorkerGPUUsage(ctx, w.cfg.ID, b); err != nil && ctx.Err() == nil {
				w.logger.WarnContext(ctx, "record GPU usage", slog.Any("error", err))
			}
		}
		byIndex := make(map[int]gpu.Usage, len(us))
		for _, u := range us {
			byIndex[u.Index] = u
		}
		w.mu.Lock()
		type due struct {
			id  string
			pts []store.MetricPoint
		}
		var todo []due
		for id, j := range w.gpuJobs {
			var util float64
			var mem int64
			n := 0
			for _, idx := range j.indexes {
				if u, ok := byIndex[idx]; ok {
					util += float64(u.UtilizationPct)
					mem += u.MemoryUsedMB
					n++
				}
			}
			if n == 0 {
				continue
			}
			todo = append(todo, due{id: id, pts: []store.MetricPoint{
				{Name: "gpu_utilization", Step: j.samples, Value: util / float64(n), Time: now},
				{Name: "gpu_memory_used_mb", Step: j.samples, Value: float64(mem), Time: now},
			}})
			j.samples++
		}
		w.mu.Unlock()
		for _, d := range todo {
			if err := w.store.AppendMetrics(ctx, d.id, d.pts); err != nil && ctx.Err() == nil {
				w.logger.WarnContext(ctx, "record GPU metrics", slog.String("job_id", d.id), slog.Any("error", err))
			}
		}
	})
}

// trackGPUs registers a running job's GPUs for telemetry; the returned func
// forgets them.
func (w *Worker) trackGPUs(jobID string, indexes []int) func() {
	if len(indexes) == 0 || w.cfg.GPUs == nil {
		return func() {}
	}
	w.mu.Lock()
	w.gpuJobs[jobID] = &gpuJob{indexes: indexes}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.gpuJobs, jobID)
		w.mu.Unlock()
	}
}
