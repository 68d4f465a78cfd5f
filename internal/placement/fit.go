package placement

import (
	"fmt"
	"strings"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// CanRun says whether worker w could run spec at all (ignoring what is busy).
func CanRun(w store.Worker, spec api.JobSpec) bool {
	if spec.Resources.GPUs > len(MatchingGPUs(w, spec.Resources, false)) {
		return false
	}
	if spec.Mode == api.ModeProcess {
		return w.AllowHostProcess
	}
	return w.Executor != "" && w.Executor != "none"
}

// gpuMatches reports whether g meets the model and memory asked for.
func gpuMatches(g store.WorkerGPU, r api.Resources) bool {
	return (r.GPUModel == "" || strings.Contains(strings.ToLower(g.Model), strings.ToLower(r.GPUModel))) &&
		g.MemoryMB >= r.GPUMemoryMB
}

// MatchingGPUs lists w's GPUs that meet r, only the free ones if freeOnly.
func MatchingGPUs(w store.Worker, r api.Resources, freeOnly bool) []store.WorkerGPU {
	var out []store.WorkerGPU
	for _, g := range w.GPUs {
		if gpuMatches(g, r) && (!freeOnly || g.JobID == "") {
			out = append(out, g)
		}
	}
	return out
}

// DescribeGPUs says what a request asks for, e.g. "2 GPUs H100 with >= 40000 MB".
func DescribeGPUs(r api.Resources) string {
	d := fmt.Sprintf("%d GPU", r.GPUs)
	if r.GPUs != 1 {
		d += "s"
	}
	if r.GPUModel != "" {
		d += " " + r.GPUModel
	}
	if r.GPUMemoryMB > 0 {
		d += fmt.Sprintf(" with >= %d MB", r.GPUMemoryMB)
	}
	return d
}
