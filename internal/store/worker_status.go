package store

import "context"

// Worker statuses in the registry. Only a WorkerUp worker is given jobs; a
// preparing or out-of-service one heartbeats so that people can see it and
// why (Worker.Problem).
const (
	WorkerUp = "up"
	// WorkerPreparing: the worker's node preparation is running.
	WorkerPreparing = "preparing"
	// WorkerOutOfService: the worker cannot take jobs; Problem says why.
	WorkerOutOfService = "out_of_service"
	// WorkerStopping: the worker is shutting down; it ends or hands back
	// what runs on it and is given nothing new.
	WorkerStopping = "stopping"
	// WorkerStopped: the worker shut down cleanly.
	WorkerStopped = "stopped"
)

// SetWorkerStatus sets a registered worker's status and problem ("" clears it).
func (s *Store) SetWorkerStatus(ctx context.Context, workerID, status, problem string) error {
	return s.rdb.HSet(ctx, workerKey(workerID), "status", status, "problem", problem).Err()
}
