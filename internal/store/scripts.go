package store

import (
	"embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The store's Lua scripts, one file per transition, each with a header
// saying what its KEYS and ARGV are, as asynq's scripts have. A script makes
// no key name: every key it touches comes in KEYS, made here in Go (so that
// Redis Cluster hash tags, when they come, are a change of key names only).
// A key a transition needs but its caller may not know (the worker a job is
// placed on, the job's workspace) comes from what the caller believes; the
// script checks it against the record and answers "rekey" when it is not
// the record's, and the store calls again with the record's (runJob).
//
//go:embed lua/*.lua
var scriptFS embed.FS

// jobLib is put in front of every job transition (job_*.lua).
var jobLib = mustRead("job_lib.lua")

func mustRead(name string) string {
	b, err := scriptFS.ReadFile("lua/" + name)
	if err != nil {
		panic(fmt.Sprintf("store: embedded script %s: %v", name, err))
	}
	return string(b)
}

// script is the embedded script lua/name.
func script(name string) *redis.Script { return redis.NewScript(mustRead(name)) }

// jobScript is the embedded job transition lua/name, after jobLib.
func jobScript(name string) *redis.Script { return redis.NewScript(jobLib + mustRead(name)) }

var (
	startScript             = jobScript("job_start.lua")
	finishScript            = jobScript("job_finish.lua")
	requeueScript           = jobScript("job_requeue.lua")
	reserveScript           = script("job_reserve.lua")
	unreserveScript         = jobScript("job_unreserve.lua")
	placedScript            = jobScript("job_placed.lua")
	setReasonScript         = script("job_set_reason.lua")
	requestCancelScript     = script("job_request_cancel.lua")
	requestPreemptionScript = script("job_request_preemption.lua")
	leaseAcquireScript      = script("lease_acquire.lua")
	deleteIfValueScript     = script("delete_if_value.lua")
	claimScript             = script("worker_claim.lua")
	heartbeatScript         = script("worker_heartbeat.lua")
	appendMetricsScript     = script("metrics_append.lua")
	setParamsScript         = script("params_set.lua")
	releaseIdemScript       = script("idempotency_release.lua")
	createScheduleScript    = script("schedule_create.lua")
	deleteScheduleScript    = script("schedule_delete.lua")
	pauseScheduleScript     = script("schedule_pause.lua")
	claimTickScript         = script("schedule_claim_tick.lua")
	recordRunScript         = script("schedule_record_run.lua")
	createTrigger           = script("trigger_create.lua")
	finishClaim             = script("delivery_claim_finish.lua")
	setModelAliasScript     = script("model_alias_set.lua")
	deleteModelVersion      = script("model_version_delete.lua")
)
