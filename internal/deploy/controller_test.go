package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/deploy"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// clock is the controller's clock, moved by the tests (back-offs and the
// scale-down delay); the job service keeps the real one.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t    *testing.T
	ctx  context.Context
	rdb  redis.UniversalClient
	st   *store.Store
	jobs *job.Service
	ctl  *deploy.Controller
	clk  *clock
	sim  *simulator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx := context.Background()
	if err := st.EnsureWorkspace(ctx, api.Workspace{Name: "ws"}); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	jobs := job.New(job.Config{}, rdb, st, logger)
	clk := &clock{t: time.Now()}
	f := &fixture{t: t, ctx: ctx, rdb: rdb, st: st, jobs: jobs, clk: clk,
		ctl: deploy.New(deploy.Config{Now: clk.now}, nil, rdb, st, jobs, logger)}
	f.sim = &simulator{f: f, readyAfter: 1, steps: map[string]int{}}
	return f
}

// simulator plays the workers: it starts every queued replica job (as the
// scheduler and a worker would), reports its endpoint starting and, after
// readyAfter steps, ready; a canceled one drains and ends canceled.
type simulator struct {
	f          *fixture
	readyAfter int
	steps      map[string]int
	// events are "ready REV" and "drain REV", in order.
	events []string
}

func (s *simulator) step() {
	f := s.f
	f.t.Helper()
	names, err := f.st.DeploymentNames(f.ctx, "")
	if err != nil {
		f.t.Fatal(err)
	}
	for _, n := range names {
		slots, err := f.st.ReplicaSlots(f.ctx, n[0], n[1])
		if err != nil {
			f.t.Fatal(err)
		}
		for _, sl := range slots {
			if sl.JobID == "" {
				continue
			}
			s.stepJob(n[0], n[1], sl)
		}
	}
}

func (s *simulator) stepJob(ws, name string, sl store.ReplicaSlot) {
	f := s.f
	j, err := f.st.GetJob(f.ctx, ws, sl.JobID)
	if err != nil {
		f.t.Fatal(err)
	}
	ep := store.Endpoint{JobID: j.ID, Attempt: j.Attempt, Workspace: ws, Deployment: name, Replica: sl.ID, Worker: "sim",
		Address: "127.0.0.1:1", Model: sl.Model, Version: sl.Version, Revision: sl.Revision, State: store.EndpointStarting}
	switch {
	case j.Status == api.StatusQueued:
		if j.Spec.Service == nil || j.Spec.TimeoutSeconds != 0 {
			f.t.Fatalf("replica job %s: spec %+v, want a service job without timeout", j.ID, j.Spec)
		}
		_, p, err := f.st.Reserve(f.ctx, j.ID, j.Attempt, "sim", "")
		if err != nil {
			f.t.Fatal(err)
		}
		if err := f.st.Start(f.ctx, ws, j.ID, j.Attempt, "sim", p, time.Now()); err != nil {
			f.t.Fatal(err)
		}
		s.steps[j.ID] = 0
		s.put(ep)
	case j.Status == api.StatusRunning && j.CancelRequested:
		ep.State = store.EndpointDraining
		s.put(ep)
		s.events = append(s.events, fmt.Sprintf("drain %d", sl.Revision))
		s.end(ws, j, api.StatusCanceled)
	case j.Status == api.StatusRunning:
		s.steps[j.ID]++
		if s.steps[j.ID] >= s.readyAfter {
			if s.steps[j.ID] == s.readyAfter {
				s.events = append(s.events, fmt.Sprintf("ready %d", sl.Revision))
			}
			ep.State = store.EndpointReady
		}
		s.put(ep)
	}
}

func (s *simulator) put(ep store.Endpoint) {
	if err := s.f.st.PutEndpoint(s.f.ctx, ep); err != nil {
		s.f.t.Fatal(err)
	}
}

// end ends job j's attempt with status, as its worker would.
func (s *simulator) end(ws string, j *api.Job, status api.Status) {
	f := s.f
	f.t.Helper()
	code := 1
	o := store.NewOutcome(status, api.Reason{Code: api.ReasonExitCode, Detail: "exit code 1"})
	if status == api.StatusCanceled {
		o = store.NewOutcome(status, api.Reason{Code: api.ReasonCanceled, Detail: "canceled"})
	} else {
		o.ExitCode = &code
	}
	if err := f.st.Finish(f.ctx, ws, j.ID, j.Attempt, o, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.RemoveEndpoint(f.ctx, j.ID, j.Attempt); err != nil {
		f.t.Fatal(err)
	}
}

// crash ends the running job of replica id as failed.
func (f *fixture) crash(name, id string) {
	f.t.Helper()
	for _, sl := range f.slots(name) {
		if sl.ID == id {
			j, err := f.st.GetJob(f.ctx, "ws", sl.JobID)
			if err != nil {
				f.t.Fatal(err)
			}
			f.sim.end("ws", j, api.StatusFailed)
			return
		}
	}
	f.t.Fatalf("no replica %s", id)
}

func (f *fixture) create(spec api.DeploymentSpec, targets ...api.DeploymentTarget) {
	f.t.Helper()
	d := store.DeploymentRecord{Workspace: "ws", Spec: spec, Targets: targets, Revision: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
	if err := f.st.PutDeployment(f.ctx, d, true); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) change(name string, mod func(*store.DeploymentRecord)) {
	f.t.Helper()
	d, _, err := f.st.Deployment(f.ctx, "ws", name)
	if err != nil {
		f.t.Fatal(err)
	}
	mod(d)
	if err := f.st.PutDeployment(f.ctx, *d, false); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) slots(name string) []store.ReplicaSlot {
	f.t.Helper()
	s, err := f.st.ReplicaSlots(f.ctx, "ws", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) state(name string) store.DeploymentState {
	f.t.Helper()
	_, st, err := f.st.Deployment(f.ctx, "ws", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

// pass runs one controller pass and one simulator step.
func (f *fixture) pass() {
	f.t.Helper()
	if _, err := f.ctl.Pass(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	f.sim.step()
}

// until passes until cond holds.
func (f *fixture) until(cond func() bool, format string, args ...any) {
	f.t.Helper()
	testenv.Eventually(f.t, 10*time.Second, func() bool { f.pass(); return cond() }, format, args...)
}

// ready counts the replicas of name that are ready and not draining, by
// revision.
func (f *fixture) ready(name string) map[int]int {
	f.t.Helper()
	out := map[int]int{}
	for _, sl := range f.slots(name) {
		if sl.Draining || sl.JobID == "" {
			continue
		}
		eps, err := f.st.Endpoints(f.ctx, sl.JobID)
		if err != nil {
			f.t.Fatal(err)
		}
		if len(eps) == 1 && eps[0].State == store.EndpointReady {
			out[sl.Revision]++
		}
	}
	return out
}

var iris1 = api.DeploymentTarget{Ref: "iris:1", Model: "iris", Version: 1, SHA256: "aa", Weight: 100}
var iris2 = api.DeploymentTarget{Ref: "iris:2", Model: "iris", Version: 2, SHA256: "bb", Weight: 100}

func spec(name string, replicas int) api.DeploymentSpec {
	return api.DeploymentSpec{Name: name, Model: "iris:1", Image: "localhost/jobgate-examples:test", Command: []string{"/bin/modelserver"}, Replicas: &replicas}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, 60 * time.Second, 60 * time.Second, 60 * time.Second}
	for n, w := range want {
		if got := deploy.Backoff(n); got != w {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, w)
		}
	}
	if got := deploy.Backoff(1000); got != deploy.MaxRestartBackoff {
		t.Errorf("Backoff(1000) = %s", got)
	}
}

// TestReplicasRestartWithBackoff: a deployment of 2 becomes ready; a crashed
// replica restarts in the same slot, Restarts+1, only after its back-off
// (1s, then 2s), and the deployment is degraded meanwhile.
func TestReplicasRestartWithBackoff(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(spec("iris", 2), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 2 && f.state("iris").Status == api.DeploymentReady }, "2 replicas ready")
	victim := f.slots("iris")[0]
	for restart, backoff := range []time.Duration{time.Second, 2 * time.Second} {
		f.crash("iris", victim.ID)
		f.pass()
		var sl store.ReplicaSlot
		for _, s := range f.slots("iris") {
			if s.ID == victim.ID {
				sl = s
			}
		}
		if sl.JobID != "" || sl.Restarts != restart+1 || sl.NotBefore == nil || !sl.NotBefore.Equal(f.clk.now().Add(backoff)) {
			t.Fatalf("after crash %d: slot %+v, want no job, restarts %d, not before now+%s", restart+1, sl, restart+1, backoff)
		}
		st := f.state("iris")
		if st.Status != api.DeploymentDegraded || !strings.Contains(st.Reason, victim.ID) {
			t.Fatalf("state %+v, want degraded naming replica %s", st, victim.ID)
		}
		f.pass()
		if s := f.slots("iris"); len(s) != 2 || (s[0].ID == victim.ID && s[0].JobID != "") || (s[1].ID == victim.ID && s[1].JobID != "") {
			t.Fatalf("replica restarted before its back-off: %+v", s)
		}
		f.clk.add(backoff)
		f.until(func() bool { return f.ready("iris")[1] == 2 }, "replica %s back after its back-off", victim.ID)
		if got := len(f.slots("iris")); got != 2 {
			t.Fatalf("%d slots, want 2 (the same slot restarted)", got)
		}
	}
}

// TestCrashLoopFails: replicas that crash every time make the deployment
// failed, its reason naming the replica and how its job ended.
func TestCrashLoopFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(spec("bad", 1), iris1)
	f.until(func() bool { return f.ready("bad")[1] == 1 }, "replica ready")
	for range 3 {
		f.crash("bad", f.slots("bad")[0].ID)
		f.pass()
		f.clk.add(deploy.MaxRestartBackoff)
		f.until(func() bool { return f.ready("bad")[1] == 1 }, "replica back")
	}
	f.crash("bad", f.slots("bad")[0].ID)
	f.pass()
	st := f.state("bad")
	if st.Status != api.DeploymentFailed || !strings.Contains(st.Reason, "exit code 1") {
		t.Fatalf("state %+v, want failed with the job's end reason", st)
	}
}

// TestRollingUpdateSurgeOne: on a new revision one new replica starts at a
// time, and an old one is drained only once a new one is ready: at no point
// are fewer than the desired replicas ready.
func TestRollingUpdateSurgeOne(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.sim.readyAfter = 3
	f.create(spec("iris", 3), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 3 }, "3 replicas of revision 1 ready")
	f.sim.events = nil
	f.change("iris", func(d *store.DeploymentRecord) {
		d.Revision, d.Targets, d.Spec.Model = 2, []api.DeploymentTarget{iris2}, "iris:2"
	})
	f.until(func() bool {
		r := f.ready("iris")
		if r[1]+r[2] < 3 {
			t.Fatalf("only %v ready (by revision) during the update, want 3", r)
		}
		starting := 0
		for _, sl := range f.slots("iris") {
			if sl.Revision == 2 && !sl.Draining {
				if eps, _ := f.st.Endpoints(f.ctx, sl.JobID); sl.JobID == "" || len(eps) == 0 || eps[0].State != store.EndpointReady {
					starting++
				}
			}
		}
		if starting > 1 {
			t.Fatalf("%d new replicas starting at once, want 1 (surge one)", starting)
		}
		return r[2] == 3 && len(f.slots("iris")) == 3
	}, "3 replicas of revision 2 and nothing else")
	// Every drain of an old replica follows a new one's readiness.
	readyNew := 0
	for _, e := range f.sim.events {
		switch e {
		case "ready 2":
			readyNew++
		case "drain 1":
			if readyNew == 0 {
				t.Fatalf("an old replica drained before a new one was ready: %v", f.sim.events)
			}
			readyNew--
		}
	}
	if st := f.state("iris"); st.Status != api.DeploymentReady {
		t.Fatalf("state %+v, want ready", st)
	}
}

// TestScaleFixed: a change of replicas scales without a new revision.
func TestScaleFixed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(spec("iris", 1), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 1 }, "1 replica ready")
	three := 3
	f.change("iris", func(d *store.DeploymentRecord) { d.Spec.Replicas = &three })
	f.until(func() bool { return f.ready("iris")[1] == 3 }, "3 replicas ready")
	zero := 0
	f.change("iris", func(d *store.DeploymentRecord) { d.Spec.Replicas = &zero })
	f.until(func() bool { return len(f.slots("iris")) == 0 }, "no replica left")
	if st := f.state("iris"); st.Status != api.DeploymentScaledToZero {
		t.Fatalf("state %+v, want scaled_to_zero", st)
	}
}

// TestAutoscale: up at once on the routers' in-flight load, down only
// after the scale-down delay, to zero when idle, and back from zero at once
// when a router holds a request.
func TestAutoscale(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	s := spec("auto", 0)
	s.Replicas = nil
	s.Autoscale = &api.Autoscale{Min: 0, Max: 4, TargetConcurrency: 2, ScaleDownDelaySeconds: 30}
	f.create(s, iris1)
	f.until(func() bool { return f.ready("auto")[1] == 1 }, "the first replica ready")
	report := func(inFlight float64, waiting int) {
		if err := f.st.ReportLoad(f.ctx, "ws", "auto", "router-1", store.RouterLoad{InFlight: inFlight, Waiting: waiting, At: f.clk.now()}); err != nil {
			t.Fatal(err)
		}
	}
	report(7, 0) // ceil(7/2) = 4
	f.until(func() bool { return f.ready("auto")[1] == 4 }, "4 replicas for 7 in flight")
	if st := f.state("auto"); st.Desired != 4 || st.LastRequest == nil {
		t.Fatalf("state %+v, want desired 4 and a last request", st)
	}
	report(1, 0)
	f.pass()
	f.clk.add(29 * time.Second)
	report(1, 0)
	f.pass()
	if st := f.state("auto"); st.Desired != 4 || st.LowSince == nil {
		t.Fatalf("before the delay: state %+v, want still 4 and low since set", st)
	}
	f.clk.add(time.Second)
	report(1, 0)
	f.until(func() bool { return len(f.slots("auto")) == 1 }, "down to 1 after the delay")
	// Idle: no reports (the last goes stale), to zero after the delay.
	f.clk.add(20 * time.Second)
	f.pass()
	f.clk.add(30 * time.Second)
	f.until(func() bool { return len(f.slots("auto")) == 0 }, "scaled to zero")
	if st := f.state("auto"); st.Status != api.DeploymentScaledToZero || st.Desired != 0 {
		t.Fatalf("state %+v, want scaled_to_zero", st)
	}
	// A held request: back to one on the next pass.
	report(0, 1)
	f.pass()
	if st := f.state("auto"); st.Desired != 1 || len(f.slots("auto")) != 1 {
		t.Fatalf("state %+v with %d slots after a held request, want desired 1 at once", st, len(f.slots("auto")))
	}
	f.until(func() bool { return f.ready("auto")[1] == 1 }, "a replica ready again")
}

// TestDeleteDrainsThenRemoves: DELETE cancels every replica's job, and the
// deployment is removed once they all ended.
func TestDeleteDrainsThenRemoves(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(spec("iris", 2), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 2 }, "2 replicas ready")
	var jobs []string
	for _, sl := range f.slots("iris") {
		jobs = append(jobs, sl.JobID)
	}
	f.change("iris", func(d *store.DeploymentRecord) { d.Deleting = true })
	if _, err := f.ctl.Pass(f.ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.state("iris"); st.Status != api.DeploymentDeleting {
		t.Fatalf("state %+v, want deleting while replicas drain", st)
	}
	f.until(func() bool {
		_, _, err := f.st.Deployment(f.ctx, "ws", "iris")
		return errors.Is(err, store.ErrNotFound)
	}, "deployment removed")
	for _, id := range jobs {
		j, err := f.st.GetJob(f.ctx, "ws", id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != api.StatusCanceled {
			t.Fatalf("replica job %s is %s, want canceled", id, j.Status)
		}
	}
	if names, _ := f.st.DeploymentNames(f.ctx, "ws"); len(names) != 0 {
		t.Fatalf("deployments %v left", names)
	}
}

// TestRunWakesOnNotify: Run (no elector: always leading) starts a new
// deployment's replica.
func TestRunStartsReplicas(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.ctl.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	f.create(spec("iris", 1), iris1)
	testenv.Eventually(t, 10*time.Second, func() bool {
		s := f.slots("iris")
		return len(s) == 1 && s[0].JobID != ""
	}, "Run submits the replica's job")
}
