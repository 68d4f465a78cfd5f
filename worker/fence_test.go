package worker

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestFence: with the default 7s lost-after a worker cut off from Redis
// stops its attempts after 4s of silence, with at most 1s of grace, and
// an attempt it stopped so goes back to the queue as worker_lost, not as
// the job's failure; one that had exited 0 succeeded.
func TestFence(t *testing.T) {
	t.Parallel()
	w := New(Config{ID: "f"}, nil, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	if w.fenceAfter() != 4*time.Second || w.fenceGrace() != time.Second || w.fenceProbe() != time.Second {
		t.Fatalf("fence after %s, grace %s, probe %s; want 4s, 1s, 1s", w.fenceAfter(), w.fenceGrace(), w.fenceProbe())
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(&errFenced{silent: 4 * time.Second, grace: w.fenceGrace()})
	if g := fencedGrace(ctx, 5*time.Second); g != time.Second {
		t.Errorf("grace of a fenced stop: %s, want 1s", g)
	}
	if g := fencedGrace(context.Background(), 5*time.Second); g != 5*time.Second {
		t.Errorf("grace of another stop: %s, want 5s", g)
	}

	zero, term := 0, 143
	tests := []struct {
		name        string
		exit        *int
		runErr      error
		wantRequeue bool
		wantStatus  api.Status
		wantCode    string
	}{
		{name: "stopped", exit: &term, wantRequeue: true, wantStatus: api.StatusFailed, wantCode: api.ReasonWorkerLost},
		{name: "executor error", runErr: errors.New("podman away"), wantRequeue: true, wantStatus: api.StatusFailed, wantCode: api.ReasonWorkerLost},
		{name: "exited 0", exit: &zero, wantStatus: api.StatusSucceeded},
	}
	for _, tt := range tests {
		o := store.Outcome{ExitCode: tt.exit}
		job := &api.Job{ID: "j", Attempt: 1, Spec: api.JobSpec{TimeoutSeconds: 60}}
		requeue := w.judge(context.Background(), w.logger, job, 1, &o, tt.runErr, context.Cause(ctx))
		if requeue != tt.wantRequeue || o.Status != tt.wantStatus || o.ReasonCode != tt.wantCode {
			t.Errorf("%s: requeue %v, %s %q (%s); want requeue %v, %s %q", tt.name, requeue, o.Status, o.ReasonCode, o.Reason, tt.wantRequeue, tt.wantStatus, tt.wantCode)
		}
	}
}

// TestBeatIfSilent: an attempt dequeued after a silence longer than two
// beats first heartbeats, so that watchSilence does not fence it at once
// for the silence that just ended; when Redis does not answer it is not
// started.
func TestBeatIfSilent(t *testing.T) {
	addr := testenv.Redis(t)
	rdb := testenv.RedisClient(t, addr)
	st := store.New(rdb, store.Config{})
	w := New(Config{ID: "b", HeartbeatInterval: time.Second}, rdb, st, nil, nil, nil, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	if _, err := st.ClaimWorker(ctx, store.Worker{ID: "b", Instance: w.instance}, time.Minute, ""); err != nil {
		t.Fatal(err)
	}
	w.beatOK(time.Now())
	if err := w.beatIfSilent(ctx); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.lastBeat = time.Now().Add(-time.Minute)
	w.mu.Unlock()
	before := time.Now()
	if err := w.beatIfSilent(ctx); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	last := w.lastBeat
	w.mu.Unlock()
	if last.Before(before) {
		t.Errorf("the last beat is %s old after beatIfSilent; want one sent now", time.Since(last))
	}
	// Another instance holds the ID now: the beat is refused, and so is
	// the attempt.
	w.mu.Lock()
	w.lastBeat = time.Now().Add(-time.Minute)
	w.mu.Unlock()
	if _, err := st.ClaimWorker(ctx, store.Worker{ID: "b", Instance: "other"}, 0, w.instance); err != nil {
		t.Fatal(err)
	}
	if err := w.beatIfSilent(ctx); !errors.Is(err, store.ErrConflict) {
		t.Errorf("beatIfSilent for a superseded instance: %v, want ErrConflict", err)
	}
}
