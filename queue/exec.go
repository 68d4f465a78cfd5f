package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Exec sessions (`jobgate exec`) run a command beside a running job, on the
// worker that runs it. The gateway never reaches a worker over the network,
// so a session goes through Redis:
//
//  1. The gateway sets the session's lease (RenewExecLease) and publishes an
//     ExecRequest on ExecChannel of the job's worker (PublishExec).
//  2. The worker appends ExecEvents to the session's stream (AppendExec):
//     first ExecStarted, or ExecFailed when it will not run the command;
//     then ExecStdout and ExecStderr chunks as the command writes; last
//     ExecExited or ExecFailed.
//  3. The gateway reads the stream (ReadExec) and renews the lease while its
//     client listens. When the client goes away it publishes the request
//     again with Cancel set; the worker also stops a session whose lease
//     expired, which covers a lost cancel and a gateway that died.
const (
	// ExecStreamCap bounds a session's stream (entries, approximately). A
	// reader that falls further behind loses output, and sees it by a gap
	// in ExecEvent.Seq.
	ExecStreamCap = 4096
	// ExecChunkBytes is the most output one event carries.
	ExecChunkBytes = 16 << 10
	// ExecStreamTTL is how long a session's stream outlives its last event.
	ExecStreamTTL = 5 * time.Minute
	// ExecLeaseTTL is how long a session lives past the last renewal of its
	// lease; the gateway renews it every ExecLeaseTTL/4.
	ExecLeaseTTL = 10 * time.Second
	// ExecDefaultTimeout bounds a command whose request names no timeout.
	ExecDefaultTimeout = 5 * time.Minute
	// ExecMaxTimeout is the longest timeout a request may name.
	ExecMaxTimeout = time.Hour
)

// ExecRequest asks a worker to run Command beside attempt Attempt of job
// JobID for at most TimeoutSeconds (0: ExecDefaultTimeout), or, with Cancel,
// to stop session Session.
type ExecRequest struct {
	Session        string   `json:"session"`
	JobID          string   `json:"job_id,omitempty"`
	Attempt        int      `json:"attempt,omitempty"`
	Command        []string `json:"command,omitempty"`
	TimeoutSeconds int      `json:"timeout_seconds,omitempty"`
	Cancel         bool     `json:"cancel,omitempty"`
}

// ExecChannel carries the exec requests for one worker.
func ExecChannel(workerID string) string { return "jobgate:exec:worker:" + workerID }

// ExecStreamKey is the stream of a session's events. A session's two keys
// share a hash tag of their own, so that one DEL takes both on a Redis
// Cluster and the sessions spread over its masters.
func ExecStreamKey(session string) string { return "{jobgate:exec:" + session + "}:events" }

// ExecLeaseKey exists while the session's client listens.
func ExecLeaseKey(session string) string { return "{jobgate:exec:" + session + "}:lease" }

// PublishExec sends r to worker and returns how many subscribers got it:
// 0 means the worker is not listening (gone, or too old to exec). On a
// Redis Cluster a PUBLISH counts only the subscribers on the node it ran
// on, so there the request goes by sharded pub/sub (SPUBLISH), whose count
// is the channel's shard's, where SubscribeExec subscribes.
func PublishExec(ctx context.Context, rdb redis.UniversalClient, worker string, r ExecRequest) (int64, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("encode exec request: %w", err)
	}
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return rdb.SPublish(ctx, ExecChannel(worker), b).Result()
	}
	return rdb.Publish(ctx, ExecChannel(worker), b).Result()
}

// SubscribeExec subscribes to worker's exec requests, as PublishExec sends
// them: sharded (SSUBSCRIBE) on a Redis Cluster, plain elsewhere.
func SubscribeExec(ctx context.Context, rdb redis.UniversalClient, worker string) *redis.PubSub {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return rdb.SSubscribe(ctx, ExecChannel(worker))
	}
	return rdb.Subscribe(ctx, ExecChannel(worker))
}

// ParseExecRequest decodes a message of ExecChannel.
func ParseExecRequest(b []byte) (ExecRequest, error) {
	var r ExecRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode exec request: %w", err)
	}
	if r.Session == "" {
		return r, errors.New("exec request: session is required")
	}
	if !r.Cancel && (r.JobID == "" || r.Attempt < 1 || len(r.Command) == 0) {
		return r, errors.New("exec request: job_id, attempt and command are required")
	}
	return r, nil
}

// RenewExecLease (re)sets the session's lease for ExecLeaseTTL.
func RenewExecLease(ctx context.Context, rdb redis.UniversalClient, session string) error {
	return rdb.Set(ctx, ExecLeaseKey(session), "1", ExecLeaseTTL).Err()
}

// ExecLease is a client's hold on an exec session: the worker runs the
// command only while it is held (ExecLeaseHeld). HoldExecLease takes it;
// the client renews it while it waits (Renew) and while it streams (Keep,
// every ExecLeaseTTL/4), and Release drops it with what is left of the
// session's stream. It is used by one goroutine, the request's.
type ExecLease struct {
	rdb     redis.UniversalClient
	session string
	renewed time.Time
}

// HoldExecLease takes the lease of session for ExecLeaseTTL.
func HoldExecLease(ctx context.Context, rdb redis.UniversalClient, session string) (*ExecLease, error) {
	l := &ExecLease{rdb: rdb, session: session}
	return l, l.Renew(ctx)
}

// Renew sets the lease for ExecLeaseTTL from now.
func (l *ExecLease) Renew(ctx context.Context) error {
	if err := RenewExecLease(ctx, l.rdb, l.session); err != nil {
		return err
	}
	l.renewed = time.Now()
	return nil
}

// Keep renews the lease when a quarter of ExecLeaseTTL has passed since it
// was last renewed; a renewal that fails is tried again on the next call.
func (l *ExecLease) Keep(ctx context.Context) {
	if time.Since(l.renewed) >= ExecLeaseTTL/4 {
		_ = l.Renew(ctx)
	}
}

// Release drops the lease and the session's stream: the worker need not go
// on.
func (l *ExecLease) Release(ctx context.Context) error {
	return l.rdb.Del(ctx, ExecLeaseKey(l.session), ExecStreamKey(l.session)).Err()
}

// ExecLeaseHeld reports whether the session's client still listens.
func ExecLeaseHeld(ctx context.Context, rdb redis.UniversalClient, session string) (bool, error) {
	n, err := rdb.Exists(ctx, ExecLeaseKey(session)).Result()
	return n == 1, err
}

// ExecEventKind says what an ExecEvent is.
type ExecEventKind string

// The kinds of ExecEvent.
const (
	ExecStarted ExecEventKind = "started"
	ExecStdout  ExecEventKind = "stdout"
	ExecStderr  ExecEventKind = "stderr"
	ExecExited  ExecEventKind = "exited"
	ExecFailed  ExecEventKind = "failed"
)

// Final reports whether nothing follows an event of kind k.
func (k ExecEventKind) Final() bool { return k == ExecExited || k == ExecFailed }

// Codes of ExecFailed events; the gateway answers them with an HTTP status
// when nothing was sent to its client yet.
const (
	// ExecCodeNotRunning: the job does not run on this worker (any more).
	ExecCodeNotRunning = "job_not_running"
	// ExecCodeUnsupported: the job's executor cannot exec.
	ExecCodeUnsupported = "exec_unsupported"
	// ExecCodeBusy: the worker runs as many sessions as it allows.
	ExecCodeBusy = "too_many_sessions"
	// ExecCodeStart: the command could not be started.
	ExecCodeStart = "start_failed"
	// ExecCodeTimeout: the command ran past its timeout and was stopped.
	ExecCodeTimeout = "timeout"
	// ExecCodeWorkerStopped: the worker shut down during the session.
	ExecCodeWorkerStopped = "worker_stopped"
	// ExecCodeFailed: anything else that went wrong on the worker.
	ExecCodeFailed = "exec_failed"
)

// ExecEvent is one entry of a session's stream.
type ExecEvent struct {
	// ID is the stream entry's ID; ReadExec sets it.
	ID string
	// Seq numbers a session's events from 1, so a reader can tell that
	// the stream was trimmed under it.
	Seq  int64
	Kind ExecEventKind
	// Data is a chunk of output (ExecStdout, ExecStderr).
	Data []byte
	// ExitCode is the command's exit status (ExecExited).
	ExitCode int
	// Code and Message say why the session failed (ExecFailed).
	Code, Message string
}

// AppendExec adds events to the session's stream, capped and expiring.
func AppendExec(ctx context.Context, rdb redis.UniversalClient, session string, events ...ExecEvent) error {
	if len(events) == 0 {
		return nil
	}
	key := ExecStreamKey(session)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range events {
			v := []any{"k", string(e.Kind), "n", e.Seq}
			switch e.Kind {
			case ExecStdout, ExecStderr:
				v = append(v, "d", e.Data)
			case ExecExited:
				v = append(v, "x", e.ExitCode)
			case ExecFailed:
				v = append(v, "c", e.Code, "m", e.Message)
			}
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: ExecStreamCap, Approx: true, Values: v})
		}
		p.Expire(ctx, key, ExecStreamTTL)
		return nil
	})
	return err
}

// ReadExec returns the session's events after stream ID after ("0" for
// the first), waiting up to block for one when there is none yet; with
// block <= 0 it does not wait.
func ReadExec(ctx context.Context, rdb redis.UniversalClient, session, after string, block time.Duration) ([]ExecEvent, error) {
	switch {
	case block <= 0:
		block = -1 // 0 would make Redis wait forever
	case block < time.Millisecond:
		block = time.Millisecond // go-redis sends whole ms: under one would be 0, forever
	}
	streams, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{ExecStreamKey(session), after}, Count: 256, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ExecEvent
	for _, st := range streams {
		for _, m := range st.Messages {
			e := ExecEvent{ID: m.ID}
			str := func(k string) string { s, _ := m.Values[k].(string); return s }
			e.Kind = ExecEventKind(str("k"))
			e.Seq, _ = strconv.ParseInt(str("n"), 10, 64)
			if d, ok := m.Values["d"].(string); ok {
				e.Data = []byte(d)
			}
			e.ExitCode, _ = strconv.Atoi(str("x"))
			e.Code, e.Message = str("c"), str("m")
			out = append(out, e)
		}
	}
	return out, nil
}
