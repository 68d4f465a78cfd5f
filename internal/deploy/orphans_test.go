package deploy_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/deploy"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
)

// The controller's default OrphanGrace and SweepInterval.
const (
	orphanGrace   = 30 * time.Second
	sweepInterval = 5 * time.Second
)

// submitOrphan submits the job of replica id of deployment name as a
// controller that dies before it writes the slot would leave it.
func (f *fixture) submitOrphan(name, id string) *api.Job {
	f.t.Helper()
	j, err := f.jobs.SubmitService(f.ctx, "ws", "deployment:"+name, deploy.ReplicaSpec(spec(name, 1), iris1, 1, id))
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// startJob starts queued job id on the simulator's worker.
func (f *fixture) startJob(id string) {
	f.t.Helper()
	j, err := f.st.GetJob(f.ctx, "ws", id)
	if err != nil {
		f.t.Fatal(err)
	}
	_, p, err := f.st.Reserve(f.ctx, j.ID, j.Attempt, "sim", "")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Start(f.ctx, "ws", j.ID, j.Attempt, "sim", p, time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) job(id string) *api.Job {
	f.t.Helper()
	j, err := f.st.GetJob(f.ctx, "ws", id)
	if err != nil {
		f.t.Fatal(err)
	}
	return j
}

// canceled: the job ended canceled, or its worker was asked to stop it.
func canceled(j *api.Job) bool { return j.Status == api.StatusCanceled || j.CancelRequested }

// TestOrphanReplicaJobsCanceled: replica jobs that no slot names — one of
// a live deployment's replica that the controller never recorded (it died
// between SubmitService and PutReplicaSlot), one for a slot that runs
// another job (a second leader restarted it), and one of a deployment that
// a DELETE removed meanwhile — are canceled once seen so for the orphan
// grace, with the reason in the audit log; the deployment's own replicas
// are untouched.
func TestOrphanReplicaJobsCanceled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.create(spec("iris", 2), iris1)
	f.create(spec("old", 1), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 2 && f.ready("old")[1] == 1 }, "replicas ready")
	own := map[string]string{}
	for _, sl := range f.slots("iris") {
		own[sl.ID] = sl.JobID
	}

	noSlot := f.submitOrphan("iris", "rcrashed1")
	f.startJob(noSlot.ID) // running: its worker is asked to drain it
	otherJob := f.submitOrphan("iris", f.slots("iris")[0].ID)
	removed := f.submitOrphan("old", "rcrashed2") // left queued: canceled at once
	f.change("old", func(d *store.DeploymentRecord) { d.Deleting = true })
	f.until(func() bool {
		_, _, err := f.st.Deployment(f.ctx, "ws", "old")
		return errors.Is(err, store.ErrNotFound)
	}, "deployment old removed")

	f.clk.add(sweepInterval)
	f.pass() // the sweep sees them first
	f.clk.add(orphanGrace - time.Second)
	f.pass()
	for _, j := range []*api.Job{noSlot, otherJob, removed} {
		if got := f.job(j.ID); canceled(got) {
			t.Fatalf("job %s canceled before the orphan grace: %+v", j.ID, got)
		}
	}
	f.clk.add(sweepInterval)
	f.pass() // the next sweep, past the grace
	for _, j := range []*api.Job{noSlot, otherJob, removed} {
		if got := f.job(j.ID); !canceled(got) {
			t.Errorf("orphan job %s (replica %s of %s) is %s, cancel requested %v: want canceled", j.ID, j.Spec.Service.Replica, j.Spec.Service.Deployment, got.Status, got.CancelRequested)
		}
	}
	if got := f.job(removed.ID); got.Status != api.StatusCanceled {
		t.Errorf("queued orphan %s is %s, want canceled", removed.ID, got.Status)
	}
	// The deployment's own replicas run on, in the same slots.
	for _, sl := range f.slots("iris") {
		if own[sl.ID] != sl.JobID || sl.Draining {
			t.Errorf("slot %+v changed, want job %s", sl, own[sl.ID])
		}
		if j := f.job(sl.JobID); j.Status != api.StatusRunning || j.CancelRequested {
			t.Errorf("own replica job %s is %s (cancel requested %v), want running", j.ID, j.Status, j.CancelRequested)
		}
	}
	if got := len(f.slots("iris")); got != 2 || f.ready("iris")[1] != 2 {
		t.Errorf("%d slots, %v ready, want 2 ready", got, f.ready("iris"))
	}
	// Each cancel says why, by the deployment.
	audit, _, err := f.st.AuditLog(f.ctx, "ws", 100, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		j    *api.Job
		why  string
		name string
	}{
		{noSlot, "deployment iris has no replica rcrashed1", "iris"},
		{otherJob, "runs job " + own[otherJob.Spec.Service.Replica], "iris"},
		{removed, "deployment old does not exist", "old"},
	} {
		found := false
		for _, e := range audit {
			if e.Action == "deployment.orphan" && e.Actor == "deployment:"+c.name && strings.HasPrefix(e.Target, c.j.ID+" (orphan: ") && strings.Contains(e.Target, c.why) {
				found = true
			}
		}
		if !found {
			t.Errorf("no deployment.orphan audit entry for job %s saying %q: %+v", c.j.ID, c.why, audit)
		}
	}
}

// submitHook is the job service with a hook that runs between a replica
// job's submit and the controller's write of its slot.
type submitHook struct {
	*job.Service
	after func(*api.Job)
}

func (h submitHook) SubmitService(ctx context.Context, ws, actor string, spec api.JobSpec) (*api.Job, error) {
	j, err := h.Service.SubmitService(ctx, ws, actor, spec)
	if err == nil {
		h.after(j)
	}
	return j, err
}

// TestFreshReplicaNotReaped: a replica job whose slot is not written yet
// (another leader's sweep runs between its submit and the slot's write,
// even twice, the clock moving almost the whole grace) is not canceled,
// nor later once its slot names it; the controller's own sweep in the pass
// that submitted it leaves it too.
func TestFreshReplicaNotReaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other := deploy.New(deploy.Config{Now: f.clk.now}, nil, f.rdb, f.st, f.jobs, slog.New(slog.DiscardHandler))
	var submitted []string
	hook := submitHook{Service: f.jobs, after: func(j *api.Job) {
		submitted = append(submitted, j.ID)
		for range 2 {
			if err := other.SweepOrphans(f.ctx); err != nil {
				t.Error(err)
			}
			f.clk.add(orphanGrace - time.Second)
		}
	}}
	f.ctl = deploy.New(deploy.Config{Now: f.clk.now}, nil, f.rdb, f.st, hook, slog.New(slog.DiscardHandler))
	f.create(spec("iris", 2), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 2 }, "2 replicas ready")
	if len(submitted) != 2 {
		t.Fatalf("%d jobs submitted, want 2", len(submitted))
	}
	for range 3 {
		f.clk.add(orphanGrace)
		f.pass()
		if err := other.SweepOrphans(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range submitted {
		if j := f.job(id); j.Status != api.StatusRunning || j.CancelRequested {
			t.Errorf("replica job %s is %s (cancel requested %v), want running", id, j.Status, j.CancelRequested)
		}
	}
	if got := f.ready("iris")[1]; got != 2 {
		t.Errorf("%d replicas ready, want 2", got)
	}
}

// failCancel is the job service with cancels that fail while fail is set.
type failCancel struct {
	*job.Service
	fail *bool
}

func (h failCancel) Cancel(ctx context.Context, ws, actor, id string) error {
	if *h.fail {
		return errors.New("redis: connection reset")
	}
	return h.Service.Cancel(ctx, ws, actor, id)
}

// TestDrainCancelRetried: a replica drained (scale down) whose cancel
// failed is canceled by a later sweep, instead of running on unrouted.
func TestDrainCancelRetried(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	fail := false
	f.ctl = deploy.New(deploy.Config{Now: f.clk.now}, nil, f.rdb, f.st, failCancel{Service: f.jobs, fail: &fail}, slog.New(slog.DiscardHandler))
	f.create(spec("iris", 2), iris1)
	f.until(func() bool { return f.ready("iris")[1] == 2 }, "2 replicas ready")
	one := 1
	f.change("iris", func(d *store.DeploymentRecord) { d.Spec.Replicas = &one })
	fail = true
	if _, err := f.ctl.Pass(f.ctx); err == nil {
		t.Fatal("pass with a failing cancel: no error")
	}
	fail = false
	var drained store.ReplicaSlot
	for _, sl := range f.slots("iris") {
		if sl.Draining {
			drained = sl
		}
	}
	if drained.JobID == "" || canceled(f.job(drained.JobID)) {
		t.Fatalf("slots %+v: want one draining whose job was not canceled", f.slots("iris"))
	}
	f.clk.add(sweepInterval)
	f.until(func() bool { return len(f.slots("iris")) == 1 }, "the drained replica gone")
	if j := f.job(drained.JobID); j.Status != api.StatusCanceled {
		t.Fatalf("drained replica's job %s is %s, want canceled", j.ID, j.Status)
	}
}
