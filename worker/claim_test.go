package worker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// childProc starts a process of this machine and returns how procID
// describes it, and a func that ends it (and waits).
func childProc(t *testing.T) (string, func()) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	end := func() { cmd.Process.Kill(); cmd.Wait() }
	t.Cleanup(end)
	f := strings.Split(procID(), " ")
	if len(f) != 4 {
		t.Fatalf("procID %q: this test needs Linux /proc", procID())
	}
	var start string
	testenv.Eventually(t, 5*time.Second, func() bool { start = procStart(cmd.Process.Pid); return start != "" }, "no /proc entry for the child")
	return strings.Join([]string{f[0], f[1], strconv.Itoa(cmd.Process.Pid), start}, " "), end
}

// TestClaimWorkerID: a worker does not start under an ID that a live
// process holds (on this machine: its process exists; elsewhere: it
// heartbeats), and does start at once after a clean stop or when the
// holder's process on this machine is gone, and after LostAfter when a
// holder elsewhere has fallen silent.
func TestClaimWorkerID(t *testing.T) {
	tests := []struct {
		name string
		// holder registers the ID as another process would; it returns
		// what, if anything, keeps it heartbeating.
		holder  func(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) func(context.Context)
		refused bool
	}{
		{name: "live process on this machine", refused: true, holder: func(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) func(context.Context) {
			reg.Proc, _ = childProc(t)
			mustRegister(t, ctx, st, reg)
			return nil
		}},
		{name: "dead process on this machine", holder: func(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) func(context.Context) {
			var end func()
			reg.Proc, end = childProc(t)
			end()
			mustRegister(t, ctx, st, reg)
			return nil
		}},
		{name: "elsewhere, heartbeating", refused: true, holder: func(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) func(context.Context) {
			mustRegister(t, ctx, st, reg)
			return func(ctx context.Context) {
				for ctx.Err() == nil {
					_ = st.Heartbeat(ctx, reg.ID, reg.Instance)
					select {
					case <-ctx.Done():
					case <-time.After(50 * time.Millisecond):
					}
				}
			}
		}},
		{name: "elsewhere, fallen silent", holder: func(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) func(context.Context) {
			mustRegister(t, ctx, st, reg)
			return nil
		}},
		{name: "stopped cleanly", holder: func(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) func(context.Context) {
			mustRegister(t, ctx, st, reg)
			if err := st.StopWorker(ctx, reg.ID); err != nil {
				t.Fatal(err)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, st := lifeStore(t)
			other := store.Worker{ID: "twin", Hostname: "elsewhere", Executor: "podman", Slots: 1, StartedAt: time.Now(), Instance: "other"}
			if beat := tt.holder(t, ctx, st, other); beat != nil {
				bctx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); beat(bctx) }()
				defer func() { stop(); <-done }()
			}
			w := New(Config{ID: "twin", HeartbeatInterval: 100 * time.Millisecond, LostAfter: time.Second}, st.Redis(), st, nil, nil, nil,
				slog.New(slog.NewTextHandler(io.Discard, nil)))
			err := w.claim(ctx, store.Worker{ID: "twin", Executor: "none", Slots: 1, StartedAt: time.Now()})
			ws, _ := st.Workers(ctx)
			if len(ws) != 1 {
				t.Fatalf("registry: %+v", ws)
			}
			if tt.refused {
				if !errors.Is(err, errIDInUse) || !strings.Contains(err.Error(), "worker ID twin is in use by a live worker on host elsewhere") ||
					!strings.Contains(err.Error(), "give this one another --id") {
					t.Fatalf("claim: %v; want refused, saying who holds the ID", err)
				}
				if ws[0].Instance != "other" || ws[0].Hostname != "elsewhere" {
					t.Fatalf("a refused claim changed the registration: %+v", ws[0])
				}
				return
			}
			if err != nil {
				t.Fatalf("claim: %v; want it taken", err)
			}
			if ws[0].Instance != w.instance || ws[0].Status != store.WorkerUp {
				t.Fatalf("registration after the claim: %+v; want this instance's, up", ws[0])
			}
		})
	}
}

func mustRegister(t *testing.T, ctx context.Context, st *store.Store, reg store.Worker) {
	t.Helper()
	if err := st.RegisterWorker(ctx, reg, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestSecondLiveWorkerUnderSameIDIsRefused: while one worker runs under an
// ID, a second one in the same process (so no process check helps) is
// refused once it sees the first heartbeat; after the first stopped
// cleanly, the second starts.
func TestSecondLiveWorkerUnderSameIDIsRefused(t *testing.T) {
	rdb, st := lifeStore(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := Config{ID: "same", HeartbeatInterval: 100 * time.Millisecond, SpoolDir: t.TempDir()}
	ctxA, stopA := context.WithCancel(context.Background())
	defer stopA()
	a := New(cfg, rdb, st, artifact.Dir{Root: t.TempDir()}, nil, nil, quiet)
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctxA)
		return len(ws) == 1 && ws[0].Instance == a.instance
	}, "worker A did not register")

	b := New(cfg, rdb, st, artifact.Dir{Root: t.TempDir()}, nil, nil, quiet)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Run(ctx); !errors.Is(err, errIDInUse) {
		t.Fatalf("B.Run while A runs: %v; want refused", err)
	}
	if ws, _ := st.Workers(ctx); ws[0].Instance != a.instance || ws[0].Status != store.WorkerUp {
		t.Fatalf("after B was refused the registry says %+v; want A's, up", ws[0])
	}
	stopA()
	if err := <-doneA; err != nil {
		t.Fatalf("A.Run: %v", err)
	}
	ctxB, stopB := context.WithCancel(context.Background())
	doneB := make(chan error, 1)
	go func() { doneB <- b.Run(ctxB) }()
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		return len(ws) == 1 && ws[0].Instance == b.instance && ws[0].Status == store.WorkerUp
	}, "B did not start after A stopped")
	stopB()
	if err := <-doneB; err != nil {
		t.Fatalf("B.Run: %v", err)
	}
}

// reviewReaper is an executor whose workloads are a fixed list.
type reviewReaper struct{ list, removed []Workload }

func (r *reviewReaper) Run(context.Context, Attempt, io.Writer, io.Writer) (Outcome, error) {
	return Outcome{}, nil
}
func (r *reviewReaper) Cleanup(context.Context, string) error { return nil }
func (r *reviewReaper) Name() string                          { return "review" }
func (r *reviewReaper) Workloads(context.Context, string) ([]Workload, error) {
	return r.list, nil
}
func (r *reviewReaper) Remove(_ context.Context, wl Workload) error {
	r.removed = append(r.removed, wl)
	return nil
}

var (
	_ Executor = (*reviewReaper)(nil)
	_ Reaper   = (*reviewReaper)(nil)
)

// TestReapSameIDKeepsLiveInstancesWorkload (the review's test, on a real
// store): process B under the ID of live process A does not remove the
// workload of an attempt A runs; once A is gone (stopped), B reaps it as
// an earlier life's.
func TestReapSameIDKeepsLiveInstancesWorkload(t *testing.T) {
	ctx := context.Background()
	rdb, st := lifeStore(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &reviewReaper{}
	execs := map[api.Mode]Executor{api.ModeContainer: r}
	a := New(Config{ID: "host"}, rdb, st, nil, execs, nil, quiet)
	b := New(Config{ID: "host"}, rdb, st, nil, execs, nil, quiet)
	if err := a.claim(ctx, store.Worker{ID: "host", Executor: "review", Slots: 1, StartedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	job := runningJob(t, ctx, st, "host", a.instance)
	a.hold(job.ID, 1)
	r.list = []Workload{{ID: "c1", JobID: job.ID, Attempt: 1, Worker: "host", Running: true}}
	b.cluster = "c"
	b.reap(ctx)
	if len(r.removed) != 0 {
		t.Fatalf("B removed %v, a workload A still runs", r.removed)
	}
	if err := st.StopWorker(ctx, "host"); err != nil {
		t.Fatal(err)
	}
	b.reap(ctx)
	if len(r.removed) != 1 {
		t.Fatalf("after A stopped B removed %v; want A's workload, an earlier life's now", r.removed)
	}
}

// TestSupersededWorkerStops: a worker whose ID another process claimed
// (it had fallen silent past LostAfter, say) stops at its next heartbeat,
// and leaves the registration, the other process's now, as it is.
func TestSupersededWorkerStops(t *testing.T) {
	rdb, st := lifeStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := New(Config{ID: "old", HeartbeatInterval: 50 * time.Millisecond, SpoolDir: t.TempDir()}, rdb, st, artifact.Dir{Root: t.TempDir()},
		nil, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	testenv.Eventually(t, 10*time.Second, func() bool {
		ws, _ := st.Workers(ctx)
		return len(ws) == 1 && ws[0].Instance == w.instance
	}, "the worker did not register")
	if _, err := st.ClaimWorker(ctx, store.Worker{ID: "old", Hostname: "newer", Executor: "none", Slots: 1, StartedAt: time.Now(), Instance: "newer"},
		time.Second, w.instance); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, errIDInUse) {
		t.Fatalf("Run of the superseded worker: %v; want it stopped for the ID in use", err)
	}
	ws, _ := st.Workers(ctx)
	if ws[0].Instance != "newer" || ws[0].Status != store.WorkerUp {
		t.Fatalf("registration after the superseded worker left: %+v; want the newer one's, up", ws[0])
	}
}
