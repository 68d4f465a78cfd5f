package api

// Reason says why a job waits, or how its latest attempt ended: Code, one of
// the Reason* constants below, for programs (a job's and an attempt's
// reason_code), and Detail, a message written for people that never holds
// the text of a Go, Redis or podman error (those go to the logs of the
// gateway or worker that saw them).
//
// A record's reason is String: "code: detail" for an end
// ("exit_code: exited with 3"), the code alone when there is no detail
// ("canceled"), and the detail alone for the codes that say where a job
// stands rather than what happened to it (the wait codes, ReasonPlaced and
// ReasonEndedByClient: "needs 1 GPU H100; 0 of 2 free on 1 worker").
type Reason struct {
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// String is the reason as a job's reason field reads.
func (r Reason) String() string {
	switch {
	case r.Code == "" || bareCodes[r.Code]:
		return r.Detail
	case r.Detail == "":
		return r.Code
	}
	return r.Code + ": " + r.Detail
}

// Why attempts end. Each ends a job, or (worker_lost, worker_stopped,
// preempted, and a failure with retries left) its attempt.
const (
	ReasonExitCode      = "exit_code"
	ReasonTimeout       = "timeout"
	ReasonCanceled      = "canceled"
	ReasonImageNotFound = "image_not_found"
	ReasonStartFailed   = "start_failed"
	ReasonModeRefused   = "mode_not_allowed"
	ReasonWorkerLost    = "worker_lost"
	ReasonWorkerStopped = "worker_stopped"
	// ReasonSecretUnavailable: a secret the job names could not be opened.
	ReasonSecretUnavailable = "secret_unavailable"
	// ReasonGPUUnavailable: the GPUs the scheduler gave the attempt are
	// not on its worker.
	ReasonGPUUnavailable = "gpu_unavailable"
	// ReasonPreempted: a high-priority job needed the GPUs of this low one.
	ReasonPreempted = "preempted"
	// ReasonOutputsTooLarge: the job wrote more to JOBGATE_OUTPUTS than the
	// worker's cap (--max-output-mb); nothing of that attempt was collected.
	ReasonOutputsTooLarge = "outputs_too_large"
	// ReasonInputUnavailable: an input could not be given to the job (its
	// datastore was deleted, the path is missing on the worker or leads out
	// of the datastore); retrying would not help.
	ReasonInputUnavailable = "input_unavailable"
	// ReasonPreparationFailed: the job's preparation exited non-zero, so
	// its command did not run ("preparation_failed: exited with 3").
	ReasonPreparationFailed = "preparation_failed"
	// ReasonExecutorError: the worker could not run the attempt for a
	// reason of its own (its log says which).
	ReasonExecutorError = "executor_error"
	// ReasonBatchErrors: more of a batch's rows failed than its
	// error_threshold tolerates ("batch_errors: 3 of 10 rows failed").
	ReasonBatchErrors = "batch_errors"
	// ReasonBatchUnavailable: the worker cannot score a batch (no scoring
	// router configured, or its input is gone).
	ReasonBatchUnavailable = "batch_unavailable"
	// ReasonRunAbandoned: a tracked run's job ended without ending it.
	ReasonRunAbandoned = "run_abandoned"
	// ReasonEndedByClient: a tracked run was ended through the tracking API.
	ReasonEndedByClient = "ended_by_client"
	// ReasonEarlyTerminated: a sweep's early termination rule stopped the
	// trial; the detail names the rule and the numbers it compared.
	ReasonEarlyTerminated = "early_terminated"
)

// Why a queued job waits.
const (
	// ReasonWaitingForScheduler: just submitted, or handed back by a worker
	// that went away before starting it; the scheduler has not looked yet.
	ReasonWaitingForScheduler = "waiting_for_scheduler"
	// ReasonPlaced: on a worker's queue, about to start.
	ReasonPlaced = "placed"
	// ReasonQuota: the workspace's max_running_jobs or max_gpus is reached.
	ReasonQuota = "quota"
	// ReasonNoWorker: no worker that could run the job is up.
	ReasonNoWorker = "no_worker"
	// ReasonWaitingForGPU: not enough free GPUs that match.
	ReasonWaitingForGPU = "waiting_for_gpu"
	// ReasonWaitingForSlot: every worker that could run it is full.
	ReasonWaitingForSlot = "waiting_for_slot"
	// ReasonPreempting: low-priority jobs are being stopped for its GPUs.
	ReasonPreempting = "preempting"
)

// bareCodes are the codes whose reason reads as its detail alone.
var bareCodes = map[string]bool{
	ReasonWaitingForScheduler: true, ReasonPlaced: true, ReasonQuota: true, ReasonNoWorker: true,
	ReasonWaitingForGPU: true, ReasonWaitingForSlot: true, ReasonPreempting: true, ReasonEndedByClient: true,
}
