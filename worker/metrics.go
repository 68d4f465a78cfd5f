package worker

import "github.com/jobgate/jobgate/internal/metrics"

// capacity is what the worker has and uses now, for its metrics' gauges:
// the attempts it holds (preparing, running or stopping) and the GPUs given
// to running ones.
func (w *Worker) capacity() metrics.Capacity {
	c := metrics.Capacity{Slots: w.cfg.Slots}
	if w.cfg.GPUs != nil {
		c.GPUs = len(w.cfg.GPUs.Devices())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c.SlotsInUse = len(w.held)
	for _, j := range w.gpuJobs {
		c.GPUsInUse += len(j.indexes)
	}
	return c
}
