// Package placement places queued jobs on workers: it reads the worker
// registry and the workspace quotas, picks a worker and its GPUs for each
// pending job in order (priority, then age), preempts low-priority jobs for
// high-priority GPU jobs, recovers the jobs of lost workers, and says why a
// job waits. Only the leader places (internal/leader); the other gateways'
// schedulers wait to take over.
package placement
