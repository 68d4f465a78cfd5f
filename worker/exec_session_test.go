package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
	"github.com/jobgate/jobgate/worker"
)

// execSession drives exec sessions on a worker the way the gateway does,
// through the queue contract only.
type execSession struct {
	t      *testing.T
	rdb    redis.UniversalClient
	worker string
}

var sessionN int

// start sets the lease (unless lease is false) and publishes the request;
// it returns the session ID.
func (s execSession) start(r queue.ExecRequest, lease bool) string {
	s.t.Helper()
	sessionN++
	r.Session = fmt.Sprintf("%s-%d", strings.ToLower(strings.ReplaceAll(s.t.Name(), "/", "-")), sessionN)
	if lease {
		if err := queue.RenewExecLease(context.Background(), s.rdb, r.Session); err != nil {
			s.t.Fatal(err)
		}
	}
	if n, err := queue.PublishExec(context.Background(), s.rdb, s.worker, r); err != nil || n != 1 {
		s.t.Fatalf("publish exec request: %d receivers, %v", n, err)
	}
	return r.Session
}

// events waits until the session's stream holds a final event (or, with
// until, an event until accepts) and returns the stream.
func (s execSession) events(session string, until func(queue.ExecEvent) bool) []queue.ExecEvent {
	s.t.Helper()
	if until == nil {
		until = func(e queue.ExecEvent) bool { return e.Kind.Final() }
	}
	var all []queue.ExecEvent
	testenv.Eventually(s.t, 30*time.Second, func() bool {
		var err error
		all, err = queue.ReadExec(context.Background(), s.rdb, session, "0", 0)
		if err != nil {
			s.t.Fatal(err)
		}
		for _, e := range all {
			if until(e) {
				return true
			}
		}
		return false
	}, "session %s never got there; events: %s", session, lazyRender{&all})
	return all
}

// lazyRender renders events when a failure message is printed.
type lazyRender struct{ events *[]queue.ExecEvent }

func (l lazyRender) String() string { return render(*l.events) }

// render is the stream as "started, stdout:out\n, exited:4".
func render(events []queue.ExecEvent) string {
	var parts []string
	for _, e := range events {
		switch e.Kind {
		case queue.ExecStdout, queue.ExecStderr:
			parts = append(parts, string(e.Kind)+":"+string(e.Data))
		case queue.ExecExited:
			parts = append(parts, fmt.Sprintf("exited:%d", e.ExitCode))
		case queue.ExecFailed:
			parts = append(parts, "failed:"+e.Code)
		default:
			parts = append(parts, string(e.Kind))
		}
	}
	return strings.Join(parts, ", ")
}

// TestExecSessions runs sessions on a real worker with the process executor:
// output and exit code, refusals, the timeout, a cancel, and a client that
// went away without one (its lease expired).
func TestExecSessions(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := worker.New(worker.Config{ID: "execw", Slots: 2, AllowHostProcess: true, SpoolDir: t.TempDir(), CheckpointDir: t.TempDir(),
		ShutdownTimeout: 100 * time.Millisecond},
		rdb, st, artifact.Dir{Root: t.TempDir()},
		map[api.Mode]worker.Executor{api.ModeProcess: worker.NewProcessExecutor(worker.ProcessConfig{WorkDir: t.TempDir(), StopGrace: time.Second}, slog.Default())},
		nil, slog.Default())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stopWorker := func() { once.Do(func() { cancel(); <-done }) }
	defer stopWorker()
	testenv.Eventually(t, 10*time.Second, func() bool { ws, _ := st.Workers(ctx); return len(ws) == 1 }, "worker did not register")

	j := place(t, ctx, rdb, st, api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", "echo sleeping; exec sleep 60"}, TimeoutSeconds: 120}, "execw")
	testenv.Eventually(t, 20*time.Second, func() bool {
		l, _ := st.ReadLogs(ctx, j.ID, "0", 10, 0)
		return len(l) > 0
	}, "job never started")
	s := execSession{t: t, rdb: rdb, worker: "execw"}
	sh := func(script string) []string { return []string{"/bin/sh", "-c", script} }

	t.Run("output and exit code", func(t *testing.T) {
		id := s.start(queue.ExecRequest{JobID: j.ID, Attempt: 1, Command: sh(`echo "$JOBGATE_JOB_ID"; echo err >&2; exit 4`)}, true)
		// Two pipes: which of stdout and stderr comes first is not fixed.
		got := render(s.events(id, nil))
		for _, want := range []string{"started, ", "stdout:" + j.ID + "\n", "stderr:err\n", ", exited:4"} {
			if !strings.Contains(got, want) {
				t.Errorf("events: %s; want %q among them", got, want)
			}
		}
	})
	t.Run("not running here", func(t *testing.T) {
		for _, r := range []queue.ExecRequest{
			{JobID: "no-such-job", Attempt: 1, Command: sh("true")},
			{JobID: j.ID, Attempt: 2, Command: sh("true")},
		} {
			id := s.start(r, true)
			if got := render(s.events(id, nil)); got != "failed:"+queue.ExecCodeNotRunning {
				t.Errorf("%s attempt %d: %s, want failed:%s", r.JobID, r.Attempt, got, queue.ExecCodeNotRunning)
			}
		}
	})
	t.Run("timeout", func(t *testing.T) {
		id := s.start(queue.ExecRequest{JobID: j.ID, Attempt: 1, Command: sh("sleep 60"), TimeoutSeconds: 1}, true)
		if got := render(s.events(id, nil)); got != "started, failed:"+queue.ExecCodeTimeout {
			t.Errorf("events: %s, want started, failed:%s", got, queue.ExecCodeTimeout)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		// The lease is kept while the test waits: only the cancel can end
		// the command before its timeout.
		id := s.start(queue.ExecRequest{JobID: j.ID, Attempt: 1, Command: sh("echo up; exec sleep 60"), TimeoutSeconds: 120}, true)
		s.events(id, func(e queue.ExecEvent) bool { return e.Kind == queue.ExecStdout })
		if _, err := queue.PublishExec(ctx, rdb, "execw", queue.ExecRequest{Session: id, Cancel: true}); err != nil {
			t.Fatal(err)
		}
		keep, stopKeeping := context.WithCancel(ctx)
		defer stopKeeping()
		go func() {
			for keep.Err() == nil {
				_ = queue.RenewExecLease(keep, rdb, id)
				select {
				case <-keep.Done():
				case <-time.After(time.Second):
				}
			}
		}()
		if got := render(s.events(id, nil)); got != "started, stdout:up\n, exited:143" {
			t.Errorf("events: %s, want the command ended by SIGTERM (143)", got)
		}
	})
	t.Run("client gone without a cancel", func(t *testing.T) {
		id := s.start(queue.ExecRequest{JobID: j.ID, Attempt: 1, Command: sh("exec sleep 60"), TimeoutSeconds: 120}, false)
		if got := render(s.events(id, nil)); got != "started, exited:143" {
			t.Errorf("events: %s, want the command stopped once the lease was found missing", got)
		}
	})
	t.Run("worker shuts down", func(t *testing.T) {
		id := s.start(queue.ExecRequest{JobID: j.ID, Attempt: 1, Command: sh("echo up; exec sleep 60"), TimeoutSeconds: 120}, true)
		s.events(id, func(e queue.ExecEvent) bool { return e.Kind == queue.ExecStdout })
		stopWorker()
		if got := render(s.events(id, nil)); got != "started, stdout:up\n, failed:"+queue.ExecCodeWorkerStopped {
			t.Errorf("events: %s, want failed:%s", got, queue.ExecCodeWorkerStopped)
		}
	})
}
