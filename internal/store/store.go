// Package store keeps jobgate's metadata in Redis: job records and their
// indexes, the scheduler's pending set, the worker registry, live log streams
// and the scheduler lease.
//
// Every change of a job's status goes through one Lua script that checks the
// state it expects (status and attempt) before it writes, so concurrent actors
// — a worker finishing, a user canceling, the scheduler recovering a lost
// worker — cannot end a job twice or resurrect an ended one.
package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// Errors the store returns; the gateway maps them to HTTP status codes.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict means the record is not in the state the caller expected.
	ErrConflict = errors.New("conflict")
)

// Config tunes the store. The zero value works.
type Config struct {
	// LogStreamCap bounds each job's live log stream (entries, approximately).
	// Older lines stay in the at-rest log. Default 100000.
	LogStreamCap int64
	// EndedStreamTTL is how long a live log stream is kept after its job ended;
	// the at-rest log remains. Default 7 days.
	EndedStreamTTL time.Duration
	// ReplicaAcks, when above 0, is how many replicas must acknowledge a
	// new job (and a cancel) before the call returns success: WAIT after
	// the write's EXEC (see txReplicated). Fewer in ReplicaTimeout is an
	// ErrNotReplicated. Needs a single server or a Sentinel set. Default 0.
	ReplicaAcks int
	// ReplicaTimeout bounds that WAIT. Default 1s.
	ReplicaTimeout time.Duration
}

// Store is the Redis-backed metadata store. It is safe for concurrent use.
type Store struct {
	rdb redis.UniversalClient
	cfg Config
	// submits commits the jobs of concurrent SubmitJobs together, and
	// wsReads reads the workspaces of concurrent Workspace calls together.
	submits groupCommit
	wsReads batcher[wsRead]
}

// New returns a Store on rdb. It hooks rdb so that errors of a Redis that
// cannot be reached wrap ErrUnavailable, on every user of rdb.
func New(rdb redis.UniversalClient, cfg Config) *Store {
	cfg.LogStreamCap = cmp.Or(cfg.LogStreamCap, 100_000)
	cfg.EndedStreamTTL = cmp.Or(cfg.EndedStreamTTL, 7*24*time.Hour)
	cfg.ReplicaTimeout = cmp.Or(cfg.ReplicaTimeout, time.Second)
	rdb.AddHook(unavailableHook{})
	return &Store{rdb: rdb, cfg: cfg}
}

// Redis exposes the client, for components that share the connection.
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// prefix begins every key of the store's. Its hash tag puts them all in
// one slot of a Redis Cluster: the transitions (Lua scripts, MULTIs) touch
// a job's record, the indexes, the pending set, the worker registry and the
// live log stream together, and Redis runs those only within one slot. The
// per-job metric series are the exception (metricKey): they are touched only
// with each other, so each job's carry a tag of their own and spread over
// the masters. Installations from before the tag have their keys under
// oldPrefix; MigrateKeys renames them.
const prefix = "{jobgate}:"

func jobKey(id string) string          { return prefix + "job:" + id }
func logKey(id string) string          { return prefix + "job:" + id + ":log" }
func historyKey(id string) string      { return prefix + "job:" + id + ":attempts" }
func statusIdxPrefix(ws string) string { return prefix + "ws:" + ws + ":jobs:status:" }
func expIdxKey(ws, exp string) string  { return prefix + "ws:" + ws + ":jobs:exp:" + exp }
func workerKey(id string) string       { return prefix + "worker:" + id }
func workerJobsKey(id string) string   { return prefix + "worker:" + id + ":jobs" }
func workerGPUsKey(id string) string   { return prefix + "worker:" + id + ":gpus" }

const (
	pendingKey     = prefix + "pending"
	workersKey     = prefix + "workers"
	experimentsKey = prefix + "experiments:"
	leaderKey      = prefix + "scheduler:leader"
)

// priorityRank orders the pending set: high first, then normal, then low;
// within a rank, oldest first.
func priorityRank(p api.Priority) int64 {
	switch p {
	case api.PriorityHigh:
		return 0
	case api.PriorityLow:
		return 2
	default:
		return 1
	}
}

// pendingScore fits in a float64 exactly: rank*1e14 + unix ms (~1.8e12).
func pendingScore(p api.Priority, created time.Time) float64 {
	return float64(priorityRank(p)*100_000_000_000_000 + created.UnixMilli())
}

// CreateJob stores a new queued job and puts it in the pending set. A
// tracked run (mode tracked: a run logged through the tracking API, which
// jobgate does not execute) is stored running instead, and never pending.
func (s *Store) CreateJob(ctx context.Context, j *api.Job) error {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	_, err = s.txReplicated(ctx, func(p redis.Pipeliner) error {
		writeJob(ctx, p, j, spec)
		return nil
	})
	return err
}

// Submission is what SubmitJob stores and sends with a new job, in its
// MULTI.
type Submission struct {
	// Audit, when set, is appended to its workspace's audit log.
	Audit *api.AuditEntry
	// Wake, when set, is a channel published to (the scheduler's).
	Wake string
}

// SubmitJob is CreateJob that also records sub's audit entry and publishes
// its wake-up, all in one MULTI: a submit that gets its answer is stored,
// audited and announced, or none of it. Concurrent SubmitJobs share their
// round trip (group commit: see groupCommit). It returns the job's place in
// the pending set at that step (0 is next), or -1 when it is not pending (a
// tracked run).
func (s *Store) SubmitJob(ctx context.Context, j *api.Job, sub Submission) (int64, error) {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return -1, fmt.Errorf("encode spec: %w", err)
	}
	var audit []byte
	if sub.Audit != nil {
		if audit, err = json.Marshal(sub.Audit); err != nil {
			return -1, err
		}
	}
	return s.submits.commit(ctx, s.txReplicated, func(p redis.Pipeliner) *redis.IntCmd {
		writeJob(ctx, p, j, spec)
		if audit != nil {
			p.XAdd(ctx, auditArgs(sub.Audit.Workspace, audit))
		}
		if sub.Wake != "" {
			p.Publish(ctx, sub.Wake, "")
		}
		return p.ZRank(ctx, pendingKey, j.ID)
	})
}

// Idempotency is the Idempotency-Key a job is created under (CreateJobOnce).
type Idempotency struct {
	// KeyHash names the key in the job's workspace; BodyHash is what the
	// request's spec hashes to.
	KeyHash, BodyHash string
	// TTL is how long the key keeps answering with the job.
	TTL time.Duration
}

// CreateJobOnce is CreateJob under an Idempotency-Key: in the same MULTI it
// records the key as naming the job, for idem.TTL. When the key already
// names a job (another request under it won), nothing is written and that
// record comes back. So a gateway that dies after this leaves a job and a
// completed key, and one that dies before it leaves neither: a retry then
// finds at most a claim, which expires, and never makes a second job.
func (s *Store) CreateJobOnce(ctx context.Context, j *api.Job, idem Idempotency) (*IdemRecord, error) {
	done, _ := json.Marshal(IdemRecord{JobID: j.ID, BodyHash: idem.BodyHash})
	var prev *IdemRecord
	_, _, err := s.createJobGuarded(ctx, j, "idempotency key", []jobGuard{{
		key: idemKey(j.Workspace, idem.KeyHash), value: string(done), ttl: idem.TTL,
		made: func(v string) bool {
			var r IdemRecord
			if json.Unmarshal([]byte(v), &r) == nil && r.JobID != "" {
				prev = &r
				return true
			}
			return false
		},
	}})
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// jobGuard is a key that a job is made under once: set to value, for ttl,
// in the step that stores the job, unless made says its current value
// already names a job.
type jobGuard struct {
	key   string
	value string
	ttl   time.Duration
	made  func(v string) bool
}

// createJobGuarded stores new job j and sets every guard's key in one MULTI,
// under a WATCH of those keys. When a guard's key already names a job,
// nothing is written, and the guard's index and the key's value come back
// (-1 otherwise). what names the guards in an error.
func (s *Store) createJobGuarded(ctx context.Context, j *api.Job, what string, guards []jobGuard) (int, string, error) {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return -1, "", fmt.Errorf("encode spec: %w", err)
	}
	keys := make([]string, len(guards))
	for i, g := range guards {
		keys[i] = g.key
	}
	for range 10 {
		found, prev := -1, ""
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			for i, g := range guards {
				v, err := tx.Get(ctx, g.key).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				if err == nil && g.made(v) {
					found, prev = i, v
					return nil
				}
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				writeJob(ctx, p, j, spec)
				for _, g := range guards {
					p.Set(ctx, g.key, g.value, g.ttl)
				}
				return nil
			})
			if err != nil {
				return err
			}
			// tx is one connection: WAIT covers this EXEC.
			return s.waitReplicas(ctx, tx)
		}, keys...)
		if errors.Is(err, redis.TxFailedErr) {
			continue // a key changed between WATCH and EXEC: look again
		}
		if err == nil && found >= 0 {
			// The job found may be one the primary has on no replica yet.
			err = s.confirmReplicated(ctx)
		}
		return found, prev, err
	}
	return -1, "", fmt.Errorf("create job under %s: %w", what, ErrConflict)
}

// writeJob queues the writes that store new job j (spec is j.Spec encoded).
func writeJob(ctx context.Context, p redis.Pipeliner, j *api.Job, spec []byte) {
	status := api.StatusQueued
	if j.Spec.Mode == api.ModeTracked {
		status = api.StatusRunning
	}
	// The record holds no field the spec holds already (name, experiment;
	// records of earlier releases do, and decodeJob reads both), nor a
	// field at its default, so that it stays small: each field of a hash
	// that holds the spec (hashtable encoding) costs some 60 bytes.
	rec := map[string]any{
		"id":          j.ID,
		"workspace":   j.Workspace,
		"status":      string(status),
		"reason":      j.Reason,
		"reason_code": j.ReasonCode,
		"attempt":     1,
		"created_at":  j.CreatedAt.UTC().Format(time.RFC3339Nano),
		"spec":        spec,
	}
	// Scripts read these two; missing, they are normal and false.
	if j.Spec.Priority != api.PriorityNormal && j.Spec.Priority != "" {
		rec["priority"] = string(j.Spec.Priority)
	}
	if j.Spec.Notify != nil {
		rec["notify"] = "true"
	}
	if j.Name != j.Spec.Name || j.Experiment != j.Spec.Experiment {
		rec["name"], rec["experiment"] = j.Name, j.Experiment
	}
	if j.Spec.ParentID != "" {
		// Its own field so job tokens can walk up a job tree cheaply.
		rec["parent_id"] = j.Spec.ParentID
	}
	if tc := traceField(j); tc != "" {
		rec["trace"] = tc
	}
	p.HSet(ctx, jobKey(j.ID), rec)
	// No index of all of the workspace's jobs: each is in the index of its
	// status, and ListJobs reads those together.
	p.ZAdd(ctx, statusIdxPrefix(j.Workspace)+string(status), redis.Z{Member: j.ID})
	p.ZAdd(ctx, expIdxKey(j.Workspace, j.Experiment), redis.Z{Member: j.ID})
	p.HSet(ctx, experimentsKey+j.Workspace, j.Experiment, j.CreatedAt.UTC().Format(time.RFC3339Nano))
	if status == api.StatusRunning {
		p.HSet(ctx, jobKey(j.ID), "started_at", j.CreatedAt.UTC().Format(time.RFC3339Nano))
	} else {
		p.ZAdd(ctx, pendingKey, redis.Z{Member: j.ID, Score: pendingScore(j.Spec.Priority, j.CreatedAt)})
	}
	if len(j.Spec.Tags) > 0 {
		p.HSet(ctx, tagsKey(j.ID), j.Spec.Tags)
	}
	if j.Spec.ParentID != "" {
		p.ZAdd(ctx, childrenKey(j.Spec.ParentID), redis.Z{Member: j.ID})
	}
	if j.Spec.Service != nil {
		// In the MULTI that makes the job: no replica job exists that the
		// deployment controller's orphan sweep cannot find (ServiceJobs).
		p.ZAdd(ctx, serviceJobsKey, redis.Z{Member: j.ID, Score: float64(j.CreatedAt.UnixMilli())})
	}
}

func childrenKey(id string) string { return prefix + "job:" + id + ":children" }

// Children returns up to limit child jobs of id, oldest first.
func (s *Store) Children(ctx context.Context, id string, limit int64) ([]api.Job, error) {
	ids, err := s.rdb.ZRangeByLex(ctx, childrenKey(id), &redis.ZRangeBy{Min: "-", Max: "+", Count: limit}).Result()
	if err != nil {
		return nil, err
	}
	jobs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, 0, len(jobs))
	for _, j := range jobs {
		if j != nil {
			out = append(out, *j)
		}
	}
	return out, nil
}

// GetJob returns job id of workspace ws; a job of another workspace is
// ErrNotFound, as if it did not exist.
func (s *Store) GetJob(ctx context.Context, ws, id string) (*api.Job, error) {
	j, err := s.GetJobByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.Workspace != ws {
		return nil, ErrNotFound
	}
	return j, nil
}

// JobsOf returns the jobs of workspace ws among ids, by ID, in one round
// trip; a job that does not exist or is another workspace's is left out.
func (s *Store) JobsOf(ctx context.Context, ws string, ids []string) (map[string]*api.Job, error) {
	valid := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return !validID(id) })
	out := make(map[string]*api.Job, len(valid))
	if len(valid) == 0 {
		return out, nil
	}
	jobs, err := s.getMany(ctx, valid)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j != nil && j.Workspace == ws {
			out[j.ID] = j
		}
	}
	return out, nil
}

// GetJobByID returns a job whatever its workspace; for workers and the scheduler.
func (s *Store) GetJobByID(ctx context.Context, id string) (*api.Job, error) {
	if !validID(id) {
		return nil, ErrNotFound
	}
	jobs, err := s.getMany(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if jobs[0] == nil {
		return nil, ErrNotFound
	}
	return jobs[0], nil
}

// validID keeps arbitrary client input out of key names.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func decodeJob(m map[string]string) (*api.Job, error) {
	j := &api.Job{
		ID:              m["id"],
		Workspace:       m["workspace"],
		Name:            m["name"],
		Experiment:      m["experiment"],
		Status:          api.Status(m["status"]),
		Reason:          m["reason"],
		ReasonCode:      m["reason_code"],
		Worker:          m["worker"],
		CancelRequested: m["cancel_requested"] == "1",
	}
	j.Attempt, _ = strconv.Atoi(m["attempt"])
	decodeTrace(j, m["trace"])
	for _, f := range strings.Split(m["gpus"], ",") {
		if n, err := strconv.Atoi(f); err == nil {
			j.GPUs = append(j.GPUs, n)
		}
	}
	if v, ok := m["exit_code"]; ok && v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			j.ExitCode = &n
		}
	}
	var err error
	if j.CreatedAt, err = time.Parse(time.RFC3339Nano, m["created_at"]); err != nil {
		return nil, fmt.Errorf("job %s: bad created_at: %w", j.ID, err)
	}
	j.StartedAt = parseTimePtr(m["started_at"])
	j.FinishedAt = parseTimePtr(m["finished_at"])
	if err := json.Unmarshal([]byte(m["spec"]), &j.Spec); err != nil {
		return nil, fmt.Errorf("job %s: bad spec: %w", j.ID, err)
	}
	if _, ok := m["name"]; !ok {
		j.Name, j.Experiment = j.Spec.Name, j.Spec.Experiment
	}
	return j, nil
}

func parseTimePtr(s string) *time.Time {
	if s == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil
	}
	return &t
}

// ListFilter selects jobs for ListJobs.
type ListFilter struct {
	Status     api.Status
	Experiment string
	// Limit is the page size; default 50.
	Limit int
	// Cursor is the last job ID of the previous page.
	Cursor string
}

// ListJobs returns a page of ws's jobs, newest first, and the cursor of the
// next page ("" on the last). Job IDs are ULIDs, so lexical order is creation
// order and the indexes are sorted sets with score 0 read by lex range.
func (s *Store) ListJobs(ctx context.Context, ws string, f ListFilter) ([]api.Job, string, error) {
	limit := cmp.Or(f.Limit, 50)
	var index string // "" = all of ws's jobs: every status index (newestIDs)
	switch {
	case f.Status != "":
		index = statusIdxPrefix(ws) + string(f.Status)
	case f.Experiment != "":
		index = expIdxKey(ws, f.Experiment)
	}
	max := "+"
	if f.Cursor != "" {
		max = "(" + f.Cursor
	}
	var out []api.Job
	for len(out) < limit {
		ids, err := s.newestIDs(ctx, ws, index, max, int64(limit+1-len(out)))
		if err != nil {
			return nil, "", err
		}
		if len(ids) == 0 {
			return out, "", nil
		}
		jobs, err := s.getMany(ctx, ids)
		if err != nil {
			return nil, "", err
		}
		for _, j := range jobs {
			if j == nil || (f.Experiment != "" && j.Experiment != f.Experiment) || (f.Status != "" && j.Status != f.Status) {
				continue
			}
			if len(out) == limit {
				// One more matching job exists: the page is full.
				return out, out[len(out)-1].ID, nil
			}
			out = append(out, *j)
		}
		max = "(" + ids[len(ids)-1]
	}
	// Full page: look ahead for one more match to decide on a cursor.
	more, _, err := s.ListJobs(ctx, ws, ListFilter{Status: f.Status, Experiment: f.Experiment, Limit: 1, Cursor: out[len(out)-1].ID})
	if err != nil {
		return nil, "", err
	}
	if len(more) == 0 {
		return out, "", nil
	}
	return out, out[len(out)-1].ID, nil
}

// jobStatuses are the statuses a job is indexed by: each job is in the
// index of exactly one.
var jobStatuses = []api.Status{api.StatusQueued, api.StatusRunning, api.StatusSucceeded, api.StatusFailed, api.StatusCanceled}

// newestIDs is up to count job IDs of index below max (a lex range bound),
// newest first; index "" reads ws's status indexes together, in one MULTI
// (a job that changes status meanwhile is in one of them), and merges them.
func (s *Store) newestIDs(ctx context.Context, ws, index, max string, count int64) ([]string, error) {
	by := &redis.ZRangeBy{Max: max, Min: "-", Count: count}
	if index != "" {
		return s.rdb.ZRevRangeByLex(ctx, index, by).Result()
	}
	cmds := make([]*redis.StringSliceCmd, len(jobStatuses))
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, st := range jobStatuses {
			cmds[i] = p.ZRevRangeByLex(ctx, statusIdxPrefix(ws)+string(st), by)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range cmds {
		ids = append(ids, c.Val()...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	slices.Reverse(ids)
	return ids[:min(len(ids), int(count))], nil
}

func (s *Store) getMany(ctx context.Context, ids []string) ([]*api.Job, error) {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	var metrics []*redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, jobKey(id))
		}
		metrics = lastMetricsCmds(ctx, p, ids)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*api.Job, len(ids))
	for i, c := range cmds {
		m := c.Val()
		if len(m) == 0 {
			continue
		}
		j, err := decodeJob(m)
		if err != nil {
			return nil, err
		}
		out[i] = j
	}
	fillLastMetrics(out, metrics)
	return out, nil
}

// --- status transitions --------------------------------------------------

// jobRef is what the keys of a job's transition are made from, as the caller
// knows them: the job, its workspace, and the worker it is placed on ("" for
// none). The scripts check ws and worker against the record (see runJob).
type jobRef struct{ id, ws, worker string }

// statusKey is ws's index of jobs in status st.
func (r jobRef) statusKey(st api.Status) string { return statusIdxPrefix(r.ws) + string(st) }

// runJob runs job transition sc with the keys keys makes of ref and, in
// front of args, ref's workspace and worker (every job_*.lua that checks
// them takes them as ARGV[1] and ARGV[2]). When the script answers rekey —
// ref is not what the record says — it runs once more with the record's
// workspace and worker. It returns the script's answer.
func (s *Store) runJob(ctx context.Context, sc *redis.Script, ref jobRef, keys func(jobRef) []string, args ...any) ([]string, error) {
	return s.runJobOn(ctx, s.rdb, sc, ref, keys, args...)
}

// runJobOn is runJob on rdb (a connection of s.rdb's, see replicatedOn).
func (s *Store) runJobOn(ctx context.Context, rdb redis.Scripter, sc *redis.Script, ref jobRef, keys func(jobRef) []string, args ...any) ([]string, error) {
	for try := 0; ; try++ {
		res, err := sc.Run(ctx, rdb, keys(ref), append([]any{ref.ws, ref.worker}, args...)...).StringSlice()
		if err != nil {
			return nil, err
		}
		if len(res) == 0 {
			return nil, fmt.Errorf("job %s: empty answer from the store", ref.id)
		}
		if res[0] != "rekey" || len(res) < 3 {
			return res, nil
		}
		if try > 0 {
			return nil, fmt.Errorf("job %s: its placement kept changing: %w", ref.id, ErrConflict)
		}
		ref.ws, ref.worker = res[1], res[2]
	}
}

// Started is what the worker learns when it starts an attempt: whether a
// cancel or a preemption was asked for before it could register for them.
type Started struct {
	CancelRequested bool
	// PreemptedBy names the job the attempt is to give its GPUs to; "" if none.
	PreemptedBy string
}

// Start moves a placed, queued attempt to running on workerID. It returns
// ErrConflict when the job is no longer that queued attempt with that
// placement on that worker (canceled, re-placed, already running).
func (s *Store) Start(ctx context.Context, ws, id string, attempt int, workerID string, placement int64, now time.Time) error {
	_, err := s.StartBy(ctx, ws, id, attempt, workerID, "", placement, now)
	return err
}

// StartBy is Start that also records which process of workerID (instance,
// see RunningInstance) runs the attempt, and says what the worker needs to
// know of the record then, so that it need not read it again.
func (s *Store) StartBy(ctx context.Context, ws, id string, attempt int, workerID, instance string, placement int64, now time.Time) (Started, error) {
	res, err := s.runJob(ctx, startScript, jobRef{id: id, ws: ws, worker: workerID}, func(r jobRef) []string {
		return []string{jobKey(id), r.statusKey(api.StatusQueued), r.statusKey(api.StatusRunning),
			pendingKey, workerJobsKey(r.worker), wsRunningKey(r.ws)}
	}, attempt, now.UTC().Format(time.RFC3339Nano), placement, instance)
	if err != nil {
		return Started{}, err
	}
	if res[0] != "ok" || len(res) < 3 {
		return Started{}, fmt.Errorf("start job %s attempt %d: job is %s: %w", id, attempt, res[0], ErrConflict)
	}
	return Started{CancelRequested: res[1] == "1", PreemptedBy: res[2]}, nil
}

// Outcome is how an attempt or a job ended, for Finish and Requeue.
type Outcome struct {
	Status api.Status
	// ReasonCode is the code of the reason (api.Reason's Code) and Reason
	// its text, as the record shows it (api.Reason's String); NewOutcome
	// and SetReason set both.
	ReasonCode string
	Reason     string
	ExitCode   *int
	// Worker ran the attempt ("" if none did).
	Worker    string
	StartedAt *time.Time
	// Note adds to the attempt's history what the reason does not say,
	// such as that the attempt may still be running somewhere.
	Note string
}

// NewOutcome is an Outcome of status for reason r.
func NewOutcome(status api.Status, r api.Reason) Outcome {
	return Outcome{Status: status, ReasonCode: r.Code, Reason: r.String()}
}

// SetReason sets o's reason to r.
func (o *Outcome) SetReason(r api.Reason) { o.ReasonCode, o.Reason = r.Code, r.String() }

// AttemptRecord is one line of a job's attempt history.
type AttemptRecord struct {
	Attempt    int        `json:"attempt"`
	Worker     string     `json:"worker,omitempty"`
	Status     api.Status `json:"status"`
	Reason     string     `json:"reason,omitempty"`
	ReasonCode string     `json:"reason_code,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt time.Time  `json:"finished_at"`
	// Note is Outcome.Note.
	Note string `json:"note,omitempty"`
}

func historyRecord(attempt int, o Outcome, now time.Time) string {
	b, _ := json.Marshal(AttemptRecord{Attempt: attempt, Worker: o.Worker, Status: o.Status, Reason: o.Reason, ReasonCode: o.ReasonCode,
		ExitCode: o.ExitCode, StartedAt: o.StartedAt, FinishedAt: now.UTC(), Note: o.Note})
	return string(b)
}

func exitArg(c *int) string {
	if c == nil {
		return ""
	}
	return strconv.Itoa(*c)
}

// Finish ends attempt of job id with o (a terminal status). It returns
// ErrConflict when the job already ended or moved on to another attempt: a
// job ends exactly once.
//
// With Config.ReplicaAcks it returns once replicas have the end (else
// ErrNotReplicated, and the caller tries again): its ErrConflict too,
// since a Finish tried again after an ErrNotReplicated finds its own end.
func (s *Store) Finish(ctx context.Context, ws, id string, attempt int, o Outcome, now time.Time) error {
	err := s.replicatedOn(ctx, func(rdb redis.Cmdable) error {
		return s.finishOn(ctx, rdb, ws, id, strconv.Itoa(attempt), "", o, now)
	})
	if errors.Is(err, ErrConflict) {
		if cerr := s.confirmReplicated(ctx); cerr != nil {
			return cerr
		}
	}
	return err
}

// finish is Finish of attempt ("" = the current one), only if the job's
// status is onlyIf ("" = any that is not terminal). The worker it is placed
// on is taken to be o.Worker's until the record says otherwise.
func (s *Store) finish(ctx context.Context, ws, id, attempt, onlyIf string, o Outcome, now time.Time) error {
	return s.finishOn(ctx, s.rdb, ws, id, attempt, onlyIf, o, now)
}

// finishOn is finish on rdb (see replicatedOn).
func (s *Store) finishOn(ctx context.Context, rdb redis.Scripter, ws, id, attempt, onlyIf string, o Outcome, now time.Time) error {
	if !o.Status.Terminal() {
		return fmt.Errorf("finish job %s: status %q is not terminal", id, o.Status)
	}
	res, err := s.runJobOn(ctx, rdb, finishScript, jobRef{id: id, ws: ws, worker: o.Worker}, func(r jobRef) []string {
		return []string{jobKey(id), pendingKey, logKey(id), historyKey(id), endedKey,
			r.statusKey(api.StatusQueued), r.statusKey(api.StatusRunning), r.statusKey(o.Status), wsRunningKey(r.ws),
			workerJobsKey(r.worker), workerGPUsKey(r.worker)}
	}, attempt, string(o.Status), o.Reason, o.ReasonCode, exitArg(o.ExitCode), now.UTC().Format(time.RFC3339Nano),
		s.cfg.LogStreamCap, int64(s.cfg.EndedStreamTTL/time.Second), onlyIf,
		historyRecord(atoiOr(attempt, 0), o, now), LogChannel(id))
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return fmt.Errorf("finish job %s: job is %s: %w", id, res[0], ErrConflict)
	}
	return nil
}

func atoiOr(s string, d int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return d
}

// Requeue ends attempt of job id without ending the job: it goes back to the
// pending set as attempt+1, ahead of newer jobs of its priority. o records why
// in the attempt history (its Status is what the attempt came to). The
// worker it is placed on is taken to be o.Worker's until the record says
// otherwise.
func (s *Store) Requeue(ctx context.Context, ws, id string, attempt int, o Outcome, now time.Time) error {
	res, err := s.runJob(ctx, requeueScript, jobRef{id: id, ws: ws, worker: o.Worker}, func(r jobRef) []string {
		return []string{jobKey(id), pendingKey, historyKey(id), r.statusKey(api.StatusQueued), r.statusKey(api.StatusRunning),
			wsRunningKey(r.ws), workerJobsKey(r.worker), workerGPUsKey(r.worker)}
	}, attempt, o.Reason, o.ReasonCode, historyRecord(attempt, o, now),
		pendingScore(api.PriorityHigh, now), pendingScore(api.PriorityNormal, now), pendingScore(api.PriorityLow, now))
	if err != nil {
		return err
	}
	if res[0] != "ok" {
		return fmt.Errorf("requeue job %s: job is %s: %w", id, res[0], ErrConflict)
	}
	return nil
}

// Attempts returns the attempt history of job id, oldest first.
func (s *Store) Attempts(ctx context.Context, id string) ([]AttemptRecord, error) {
	raw, err := s.rdb.LRange(ctx, historyKey(id), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]AttemptRecord, 0, len(raw))
	for _, r := range raw {
		var a AttemptRecord
		if json.Unmarshal([]byte(r), &a) == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// CancelResult says what Cancel did.
type CancelResult int

const (
	// CancelDone: the job was queued (or a tracked run, which no worker
	// runs) and is now canceled.
	CancelDone CancelResult = iota
	// CancelRequested: the job is running; its worker was asked to stop it.
	CancelRequested
	// CancelAlreadyEnded: the job had already ended; nothing changed.
	CancelAlreadyEnded
)

// Cancel cancels a queued job or a tracked run at once, or marks a running
// job so its worker stops it (the caller publishes queue.ChannelCancel).
func (s *Store) Cancel(ctx context.Context, ws, id string, now time.Time) (CancelResult, error) {
	return s.CancelFor(ctx, ws, id, api.Reason{}, now)
}

// CancelFor is Cancel with the reason the job's end carries (its status
// is canceled all the same): a sweep's early termination, say. A zero why
// is a plain cancel's.
func (s *Store) CancelFor(ctx context.Context, ws, id string, why api.Reason, now time.Time) (CancelResult, error) {
	reason := func(detail string) api.Reason {
		if why.Code != "" {
			return why
		}
		return api.Reason{Code: api.ReasonCanceled, Detail: detail}
	}
	for range 5 {
		j, err := s.GetJob(ctx, ws, id)
		if err != nil {
			return 0, err
		}
		switch {
		case j.Status.Terminal():
			if err := s.confirmReplicated(ctx); err != nil {
				return 0, err // the end may be one a failover undoes
			}
			return CancelAlreadyEnded, nil
		case j.Status == api.StatusQueued:
			err := s.replicatedOn(ctx, func(rdb redis.Cmdable) error {
				return s.finishOn(ctx, rdb, ws, id, "", string(api.StatusQueued),
					NewOutcome(api.StatusCanceled, reason("canceled while queued")), now)
			})
			if errors.Is(err, ErrConflict) {
				continue // it started meanwhile; look again
			}
			return CancelDone, err
		case j.Spec.Mode == api.ModeTracked:
			// No worker runs it, so nobody else would end it.
			o := NewOutcome(api.StatusCanceled, reason(""))
			o.StartedAt = j.StartedAt
			err := s.replicatedOn(ctx, func(rdb redis.Cmdable) error { return s.finishOn(ctx, rdb, ws, id, "1", "", o, now) })
			if errors.Is(err, ErrConflict) {
				continue // it ended meanwhile; look again
			}
			return CancelDone, err
		default:
			ok, err := requestCancelScript.Run(ctx, s.rdb, []string{jobKey(id)}, why.Code, why.Detail).Int()
			if err != nil {
				return 0, err
			}
			if ok == 1 {
				return CancelRequested, nil
			}
		}
	}
	return 0, fmt.Errorf("cancel job %s: status kept changing: %w", id, ErrConflict)
}

// CancelReason is the reason a cancel of running job id asked its end to
// carry (CancelFor); zero for a plain cancel.
func (s *Store) CancelReason(ctx context.Context, id string) (api.Reason, error) {
	vals, err := s.rdb.HMGet(ctx, jobKey(id), "cancel_reason_code", "cancel_reason_detail").Result()
	if err != nil {
		return api.Reason{}, err
	}
	code, _ := vals[0].(string)
	detail, _ := vals[1].(string)
	return api.Reason{Code: code, Detail: detail}, nil
}

// RequestPreemption marks a running attempt to be stopped and requeued; true
// when this call marked it (the caller then tells its worker).
func (s *Store) RequestPreemption(ctx context.Context, id string, attempt int, by string) (bool, error) {
	n, err := requestPreemptionScript.Run(ctx, s.rdb, []string{jobKey(id)}, attempt, by).Int()
	return n == 1, err
}

// PreemptRequested returns the job that asked to preempt id, or "".
func (s *Store) PreemptRequested(ctx context.Context, id string) string {
	v, _ := s.rdb.HGet(ctx, jobKey(id), "preempt_requested").Result()
	return v
}

// SetReason records why a queued job waits (scheduler) without changing its state.
func (s *Store) SetReason(ctx context.Context, id string, r api.Reason) error {
	return setReasonScript.Run(ctx, s.rdb, []string{jobKey(id)}, r.String(), r.Code).Err()
}

// SetReasons is SetReason of each of waits (job ID → reason), in one round
// trip.
func (s *Store) SetReasons(ctx context.Context, waits map[string]api.Reason) error {
	if len(waits) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id, r := range waits {
			// Eval, not EvalSha: a pipeline cannot load a script it lacks.
			setReasonScript.Eval(ctx, p, []string{jobKey(id)}, r.String(), r.Code)
		}
		return nil
	})
	return err
}

// --- scheduling ----------------------------------------------------------

// Pending returns up to n pending job IDs in dispatch order.
func (s *Store) Pending(ctx context.Context, n int64) ([]string, error) {
	return s.rdb.ZRange(ctx, pendingKey, 0, n-1).Result()
}

// PendingJobs returns up to n pending jobs in dispatch order, read in one
// pipeline; a job that is gone (its ID still pending) is nil. The jobs
// come without their metrics.
func (s *Store) PendingJobs(ctx context.Context, n int64) ([]string, []*api.Job, error) {
	ids, err := s.Pending(ctx, n)
	if err != nil || len(ids) == 0 {
		return ids, nil, err
	}
	jobs, err := s.JobsByID(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	return ids, jobs, nil
}

// JobsByID returns the jobs of ids, whatever their workspace, read in one
// pipeline and without their metrics; a job that does not exist is nil.
func (s *Store) JobsByID(ctx context.Context, ids []string) ([]*api.Job, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, jobKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	jobs := make([]*api.Job, len(ids))
	for i, c := range cmds {
		if m := c.Val(); len(m) > 0 {
			if jobs[i], err = decodeJob(m); err != nil {
				return nil, err
			}
		}
	}
	return jobs, nil
}

// PendingPosition is the 0-based place of id in the pending set, or -1.
func (s *Store) PendingPosition(ctx context.Context, id string) int64 {
	n, err := s.rdb.ZRank(ctx, pendingKey, id).Result()
	if err != nil {
		return -1
	}
	return n
}

// ErrGPUTaken means a GPU asked for in Reserve is held by another job.
var ErrGPUTaken = errors.New("gpu already allocated")

// Reserve records that attempt of queued job id goes to workerID, under a new
// placement number that the task carries. It is written before the task is
// enqueued, so a scheduler that dies between the two re-enqueues the same
// placement (asynq drops the duplicate by task ID) instead of running the
// attempt twice; a task of any other placement is stale and is dropped.
// An existing reservation wins: Reserve returns its worker and number.
// ErrConflict: the job is no longer that queued attempt. The job's reason
// becomes detail, with the code api.ReasonPlaced.
//
// gpus are the worker's GPU indexes for the attempt: each is taken only if no
// other job holds it, all or none, so a GPU is never given to two jobs
// (ErrGPUTaken).
func (s *Store) Reserve(ctx context.Context, id string, attempt int, workerID, detail string, gpus ...int) (string, int64, error) {
	r := api.Reason{Code: api.ReasonPlaced, Detail: detail}
	args := []any{attempt, workerID, r.String(), r.Code, id}
	for _, g := range gpus {
		args = append(args, g)
	}
	res, err := reserveScript.Run(ctx, s.rdb, []string{jobKey(id), workerGPUsKey(workerID)}, args...).StringSlice()
	if errors.Is(err, redis.Nil) {
		return "", 0, fmt.Errorf("reserve job %s: %w", id, ErrConflict)
	}
	if err == nil && len(res) == 3 {
		return "", 0, fmt.Errorf("reserve job %s on %s: %w", id, workerID, ErrGPUTaken)
	}
	if err != nil {
		return "", 0, err
	}
	n, _ := strconv.ParseInt(res[1], 10, 64)
	return res[0], n, nil
}

// Unreserve puts job's placed but not started attempt back in the pending
// set, at the place its priority and age give it: its worker went away
// before starting it. The attempt number stays; the job's reason becomes
// detail, with the code api.ReasonWaitingForScheduler. Nothing changes when
// the job is no longer that attempt placed on workerID.
func (s *Store) Unreserve(ctx context.Context, job *api.Job, workerID, detail string) error {
	r := api.Reason{Code: api.ReasonWaitingForScheduler, Detail: detail}
	_, err := s.runJob(ctx, unreserveScript, jobRef{id: job.ID, ws: job.Workspace, worker: workerID}, func(ref jobRef) []string {
		return []string{jobKey(job.ID), pendingKey, workerJobsKey(workerID), workerGPUsKey(workerID), wsRunningKey(ref.ws)}
	}, job.Attempt, job.ID, r.String(), r.Code, pendingScore(job.Spec.Priority, job.CreatedAt))
	return err
}

// Placed takes a reserved job of workspace ws out of the pending set once
// its task is on the worker's queue, and counts it against the worker's
// slots and the workspace's max_running_jobs. Nothing changes when the job
// is no longer that attempt placed on workerID, nor when its worker started
// it first (Start does the same).
func (s *Store) Placed(ctx context.Context, ws, id string, attempt int, workerID string) error {
	_, err := s.runJob(ctx, placedScript, jobRef{id: id, ws: ws, worker: workerID}, func(r jobRef) []string {
		return []string{jobKey(id), pendingKey, workerJobsKey(workerID), wsRunningKey(r.ws)}
	}, attempt, id)
	return err
}

// DropPending removes id from the pending set (it ended or was lost track of).
func (s *Store) DropPending(ctx context.Context, id string) error {
	return s.rdb.ZRem(ctx, pendingKey, id).Err()
}

// ForgetWorkerJob removes id from a worker's placed jobs (it ended elsewhere).
func (s *Store) ForgetWorkerJob(ctx context.Context, workerID, id string) error {
	return s.rdb.SRem(ctx, workerJobsKey(workerID), id).Err()
}

// --- workers -------------------------------------------------------------

// Worker is a worker's entry in the registry.
type Worker struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname"`
	Executor string `json:"executor"`
	Slots    int    `json:"slots"`
	// Status is WorkerUp while registered, WorkerStopped after a clean
	// shutdown; WorkerPreparing, WorkerOutOfService and WorkerStopping keep
	// a live worker from jobs (see worker_status.go).
	Status string `json:"status"`
	// Problem says why a worker is out of service.
	Problem          string    `json:"problem,omitempty"`
	AllowHostProcess bool      `json:"allow_host_process"`
	StartedAt        time.Time `json:"started_at"`
	LastHeartbeat    time.Time `json:"last_heartbeat"`
	// Jobs are the IDs placed on it and not yet ended.
	Jobs []string `json:"jobs"`
	// GPUs the worker offers, with the job holding each.
	GPUs []WorkerGPU `json:"gpus"`
	// Mounts names the cluster-level mounts (worker --mount) every job on
	// this worker gets at /mounts/NAME.
	Mounts []string `json:"mounts,omitempty"`
	// StopGrace is the time the worker gives a stopped job between SIGTERM
	// and SIGKILL (worker --stop-grace); the scheduler computes the
	// deadlines of the tasks it places on the worker with it. Zero: a worker
	// that did not register one.
	StopGrace time.Duration `json:"-"`
	// Instance is the worker process that holds this ID (see ClaimWorker),
	// and Proc where it runs, as that process described itself.
	Instance string `json:"-"`
	Proc     string `json:"-"`
}

// WorkerGPU is one GPU of a worker.
type WorkerGPU struct {
	Index     int    `json:"index"`
	UUID      string `json:"uuid"`
	Model     string `json:"model"`
	MemoryMB  int64  `json:"memory_mb"`
	Simulated bool   `json:"simulated"`
	// JobID holds the GPU; empty when it is free, or (to a workspace token)
	// when another workspace's job holds it.
	JobID string `json:"job_id,omitempty"`
	// InUse is set while a job holds the GPU.
	InUse bool `json:"in_use,omitempty"`
	// UtilizationPct and MemoryUsedMB are the worker's last sample.
	UtilizationPct *int   `json:"utilization_pct,omitempty"`
	MemoryUsedMB   *int64 `json:"memory_used_mb,omitempty"`
}

// SetWorkerGPUUsage records a worker's last GPU sample (a JSON list of
// {index, utilization_pct, memory_used_mb}).
func (s *Store) SetWorkerGPUUsage(ctx context.Context, workerID string, usage []byte) error {
	return s.rdb.HSet(ctx, workerKey(workerID), "gpu_usage", usage).Err()
}

// RegisterWorker adds or refreshes w in the registry, heartbeating at now.
// A worker process registers with ClaimWorker instead.
func (s *Store) RegisterWorker(ctx context.Context, w Worker, now time.Time) error {
	fields, err := registration(w)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, workerKey(w.ID), fields)
		p.ZAdd(ctx, workersKey, redis.Z{Member: w.ID, Score: float64(now.UnixMilli())})
		return nil
	})
	return err
}

// registration is the registry hash of w.
func registration(w Worker) (map[string]any, error) {
	for i := range w.GPUs {
		w.GPUs[i].JobID, w.GPUs[i].InUse, w.GPUs[i].UtilizationPct, w.GPUs[i].MemoryUsedMB = "", false, nil, nil
	}
	gpus, err := json.Marshal(w.GPUs)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"id": w.ID, "hostname": w.Hostname, "executor": w.Executor, "slots": w.Slots,
		"allow_host_process": strconv.FormatBool(w.AllowHostProcess),
		"started_at":         w.StartedAt.UTC().Format(time.RFC3339Nano),
		"status":             cmp.Or(w.Status, WorkerUp),
		"problem":            w.Problem,
		"gpus":               gpus,
		"mounts":             strings.Join(w.Mounts, ","),
		"stop_grace_ms":      w.StopGrace.Milliseconds(),
		"instance":           w.Instance,
		"proc":               w.Proc,
	}, nil
}

// StopWorker marks a worker that shut down; the scheduler hands the jobs
// still placed on it to other workers (a worker that shuts down cleanly has
// handed back its own first).
func (s *Store) StopWorker(ctx context.Context, workerID string) error {
	return s.rdb.HSet(ctx, workerKey(workerID), "status", WorkerStopped).Err()
}

// RemoveWorker drops a worker from the registry.
func (s *Store) RemoveWorker(ctx context.Context, workerID string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, workersKey, workerID)
		p.Del(ctx, workerKey(workerID), workerJobsKey(workerID), workerGPUsKey(workerID))
		return nil
	})
	return err
}

// Workers lists the registry with each worker's placed jobs.
func (s *Store) Workers(ctx context.Context) ([]Worker, error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, workersKey, 0, -1).Result()
	if err != nil {
		return nil, err
	}
	hs := make([]*redis.MapStringStringCmd, len(zs))
	js := make([]*redis.StringSliceCmd, len(zs))
	gs := make([]*redis.MapStringStringCmd, len(zs))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			id := z.Member.(string)
			hs[i] = p.HGetAll(ctx, workerKey(id))
			js[i] = p.SMembers(ctx, workerJobsKey(id))
			gs[i] = p.HGetAll(ctx, workerGPUsKey(id))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Worker, 0, len(zs))
	for i, z := range zs {
		m := hs[i].Val()
		w := Worker{ID: z.Member.(string), Hostname: m["hostname"], Executor: m["executor"], Status: m["status"], Problem: m["problem"],
			AllowHostProcess: m["allow_host_process"] == "true",
			LastHeartbeat:    time.UnixMilli(int64(z.Score)).UTC(), Jobs: js[i].Val()}
		w.Slots, _ = strconv.Atoi(m["slots"])
		w.Instance, w.Proc = m["instance"], m["proc"]
		if ms, err := strconv.ParseInt(m["stop_grace_ms"], 10, 64); err == nil {
			w.StopGrace = time.Duration(ms) * time.Millisecond
		}
		if m["gpus"] != "" {
			_ = json.Unmarshal([]byte(m["gpus"]), &w.GPUs)
		}
		if m["mounts"] != "" {
			w.Mounts = strings.Split(m["mounts"], ",")
		}
		alloc := gs[i].Val()
		var usage []struct {
			Index          int   `json:"index"`
			UtilizationPct int   `json:"utilization_pct"`
			MemoryUsedMB   int64 `json:"memory_used_mb"`
		}
		_ = json.Unmarshal([]byte(m["gpu_usage"]), &usage)
		for k := range w.GPUs {
			w.GPUs[k].JobID = alloc[strconv.Itoa(w.GPUs[k].Index)]
			w.GPUs[k].InUse = w.GPUs[k].JobID != ""
			for _, u := range usage {
				if u.Index == w.GPUs[k].Index {
					pct, mem := u.UtilizationPct, u.MemoryUsedMB
					w.GPUs[k].UtilizationPct, w.GPUs[k].MemoryUsedMB = &pct, &mem
				}
			}
		}
		if t, err := time.Parse(time.RFC3339Nano, m["started_at"]); err == nil {
			w.StartedAt = t
		}
		out = append(out, w)
	}
	return out, nil
}

// --- scheduler lease -----------------------------------------------------

// AcquireLeadership takes or renews the scheduler lease for holder; true while
// holder leads. Exactly one holder leads per lease period.
func (s *Store) AcquireLeadership(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	n, err := leaseAcquireScript.Run(ctx, s.rdb, []string{leaderKey}, holder, ttl.Milliseconds()).Int()
	return n == 1, err
}

// ReleaseLeadership gives the lease up if holder has it.
func (s *Store) ReleaseLeadership(ctx context.Context, holder string) error {
	return deleteIfValueScript.Run(ctx, s.rdb, []string{leaderKey}, holder).Err()
}

// --- logs ----------------------------------------------------------------

// Stream names an output stream of a workload.
type Stream byte

const (
	Stdout Stream = 'o'
	Stderr Stream = 'e'
)

// LogLine is one line of output, without its newline.
type LogLine struct {
	Stream Stream
	Line   []byte
}

// LogChannel is the pub/sub channel that says job id's live log stream has
// new entries (lines, or the end marker); a follower waits on it instead of
// blocking a Redis connection on the stream.
func LogChannel(id string) string { return prefix + "logs:" + id }

// AppendLogs adds lines of the given attempt to the live log stream of job
// id, in order, and wakes the stream's followers (LogChannel).
func (s *Store) AppendLogs(ctx context.Context, id string, attempt int, lines []LogLine) error {
	if len(lines) == 0 {
		return nil
	}
	a := strconv.Itoa(attempt)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, l := range lines {
			p.XAdd(ctx, &redis.XAddArgs{Stream: logKey(id), MaxLen: s.cfg.LogStreamCap, Approx: true,
				Values: []any{string([]byte{byte(l.Stream)}), l.Line, "a", a}})
		}
		p.Publish(ctx, LogChannel(id), "")
		return nil
	})
	return err
}

// LogEntry is a line from the live stream, or the end marker (End set).
type LogEntry struct {
	ID     string
	Stream Stream
	// Line is as go-redis read it: a string, so a page of long lines is
	// not copied once more.
	Line string
	// Attempt wrote the line (1 for lines of streams written before lines
	// carried their attempt); 0 on the end marker.
	Attempt int
	// End is the job's final status on the marker written when it ended.
	End api.Status
}

// ReadLogs returns entries after stream ID after ("0" = from the start), up to
// count, waiting up to block for new ones when there are none (0 = no wait).
func (s *Store) ReadLogs(ctx context.Context, id, after string, count int64, block time.Duration) ([]LogEntry, error) {
	var res []redis.XMessage
	if block <= 0 {
		start := "(" + after
		if after == "0" || after == "" {
			start = "-"
		}
		var err error
		res, err = s.rdb.XRangeN(ctx, logKey(id), start, "+", count).Result()
		if err != nil {
			return nil, err
		}
	} else {
		streams, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{logKey(id), cmp.Or(after, "0")}, Count: count, Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, st := range streams {
			res = append(res, st.Messages...)
		}
	}
	out := make([]LogEntry, 0, len(res))
	for _, m := range res {
		e := LogEntry{ID: m.ID}
		for k, v := range m.Values {
			str, _ := v.(string)
			switch k {
			case "end":
				e.End = api.Status(str)
			case "a":
				e.Attempt, _ = strconv.Atoi(str)
			default:
				e.Line = str
				if len(k) == 1 {
					e.Stream = Stream(k[0])
				}
			}
		}
		if e.End == "" && e.Attempt == 0 {
			e.Attempt = 1
		}
		out = append(out, e)
	}
	return out, nil
}

// logPageBytes is about how much of a log stream one read brings in: pages
// get fewer entries when lines are long.
const logPageBytes = 8 << 20

// firstLogPage is how many entries a read asks for when it knows nothing of
// the lines yet: logPageBytes of lines at the workers' default line bound
// (1 MiB), so even a first page of the longest lines is about logPageBytes.
const firstLogPage = logPageBytes / (1 << 20)

// LogPageSize is how many entries the next read of a log stream should ask
// for after a page of n entries holding size bytes of lines: up to 1000, and
// fewer when lines are long (a line may be up to the workers' line bound).
// LogPageSize(0, 0) is the size of a first page, and of one after an empty
// page (what comes next may be anything): a few entries, and the pages after
// grow as the lines turn out short.
func LogPageSize(n, size int) int64 {
	if n == 0 {
		return firstLogPage
	}
	return min(1000, max(4, int64(logPageBytes/(size/n+1))))
}

var newline = []byte{'\n'}

// CopyLogs writes the lines of attempt of job id's live log stream to w, each
// with its newline, in order; attempt 0 means every attempt's. It returns how
// many lines it wrote. It reads the stream a page at a time (LogPageSize)
// and writes each line as a string: a w that is an io.StringWriter (a
// bufio.Writer) takes it without a copy.
func (s *Store) CopyLogs(ctx context.Context, w io.Writer, id string, attempt int) (int, error) {
	after, count, lines := "0", LogPageSize(0, 0), 0
	for {
		entries, err := s.ReadLogs(ctx, id, after, count, 0)
		if err != nil {
			return lines, err
		}
		size := 0
		for _, e := range entries {
			after = e.ID
			size += len(e.Line)
			if e.End != "" || (attempt != 0 && e.Attempt != attempt) {
				continue
			}
			if _, err := io.WriteString(w, e.Line); err != nil {
				return lines, err
			}
			if _, err := w.Write(newline); err != nil {
				return lines, err
			}
			lines++
		}
		if int64(len(entries)) < count {
			return lines, nil
		}
		count = LogPageSize(len(entries), size)
	}
}

// Experiments lists ws's experiments with their latest submission time.
func (s *Store) Experiments(ctx context.Context, ws string) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, experimentsKey+ws).Result()
}

// ExperimentJobCount is how many jobs experiment exp of ws holds.
func (s *Store) ExperimentJobCount(ctx context.Context, ws, exp string) (int64, error) {
	return s.rdb.ZCard(ctx, expIdxKey(ws, exp)).Result()
}

// CreateExperiment registers experiment exp of ws before it has jobs (the
// MLflow API creates experiments first); false when it exists already.
func (s *Store) CreateExperiment(ctx context.Context, ws, exp string, now time.Time) (bool, error) {
	return s.rdb.HSetNX(ctx, experimentsKey+ws, exp, now.UTC().Format(time.RFC3339Nano)).Result()
}

// ExperimentActivity is when experiment exp of ws last got a job, or
// ErrNotFound when ws has no such experiment.
func (s *Store) ExperimentActivity(ctx context.Context, ws, exp string) (time.Time, error) {
	v, err := s.rdb.HGet(ctx, experimentsKey+ws, exp).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, ErrNotFound
	}
	if err != nil {
		return time.Time{}, err
	}
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t, nil
}
