package gateway

import (
	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// The REST API serves api types only (TestResponsesKeepTheirBytes pins
// their bytes to what it served before): these turn store records into them.

// convert maps in with f; nil stays nil (a list the API shows as null).
func convert[S, T any](in []S, f func(S) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}

// workerView is a registered worker as the API shows it, in state.
func workerView(w store.Worker, state string) api.Worker {
	return api.Worker{ID: w.ID, Hostname: w.Hostname, Executor: w.Executor, Slots: w.Slots, Status: w.Status,
		Problem: w.Problem, AllowHostProcess: w.AllowHostProcess, StartedAt: w.StartedAt, LastHeartbeat: w.LastHeartbeat,
		Jobs: w.Jobs, GPUs: convert(w.GPUs, func(g store.WorkerGPU) api.WorkerGPU { return api.WorkerGPU(g) }),
		Mounts: w.Mounts, State: state}
}
