package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/sweep"
)

func sweepBody(sampling, space, extra string) string {
	return `{"name": "tune", "trial": {"image": "localhost/x:1", "command": ["train", "--lr={{ .params.lr }}"], "env": {"OPT": "{{ .params.opt }}"}},
		"sampling": ` + sampling + `, "search_space": ` + space + `,
		"objective": {"metric": "val_loss", "goal": "minimize"}` + extra + `}`
}

const twoByTwo = `{"lr": {"type": "choice", "values": [0.1, 0.01]}, "opt": {"type": "choice", "values": ["adam", "sgd"]}}`

// endTrial starts job id on a made-up worker and ends it with status, as
// the scheduler and a worker would.
func (f *fixture) endTrial(id string, status api.Status) {
	f.t.Helper()
	ctx := context.Background()
	_, n, err := f.st.Reserve(ctx, id, 1, "w-sweep", "")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Start(ctx, DefaultWorkspace, id, 1, "w-sweep", n, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	code := 0
	if status != api.StatusSucceeded {
		code = 1
	}
	if err := f.st.Finish(ctx, DefaultWorkspace, id, 1, store.Outcome{Status: status, ExitCode: &code}, time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

// pass is one pass of the leader's sweep loop.
func (f *fixture) pass() {
	f.t.Helper()
	if err := f.plane.Sweeps.Pass(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

func TestSweepGridMakesTheGrid(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`, twoByTwo, `, "limits": {"max_concurrent_trials": 10}`), &sw)
	if sw.Status != api.SweepRunning || len(sw.Trials) != 4 {
		t.Fatalf("sweep %s with %d trials, want running with 4: %+v", sw.Status, len(sw.Trials), sw)
	}
	var got []string
	for _, tr := range sw.Trials {
		var j api.JobDetail
		f.mustCall("GET", "/v1/jobs/"+tr.JobID, systemToken, "", &j)
		if j.Spec.ParentID != sw.ID {
			t.Errorf("trial %d's parent_id %q, want the sweep %s", tr.Index, j.Spec.ParentID, sw.ID)
		}
		want := []string{"train", "--lr=" + tr.Params["lr"]}
		if !slices.Equal(j.Spec.Command, want) || j.Spec.Env["OPT"] != tr.Params["opt"] {
			t.Errorf("trial %d runs %q with OPT=%q; want %q, OPT=%q", tr.Index, j.Spec.Command, j.Spec.Env["OPT"], want, tr.Params["opt"])
		}
		if j.Params["lr"] != tr.Params["lr"] || j.Params["opt"] != tr.Params["opt"] {
			t.Errorf("trial %d's job params %v, want %v", tr.Index, j.Params, tr.Params)
		}
		got = append(got, tr.Params["lr"]+"/"+tr.Params["opt"])
	}
	want := []string{"0.1/adam", "0.1/sgd", "0.01/adam", "0.01/sgd"}
	if !slices.Equal(got, want) {
		t.Errorf("grid %v, want %v", got, want)
	}
	// A pass of the controller makes no trial more.
	f.pass()
	f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	if len(sw.Trials) != 4 {
		t.Errorf("%d trials after a read, want 4", len(sw.Trials))
	}
}

func TestSweepLimits(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "random", "seed": 5}`,
		`{"lr": {"type": "loguniform", "min_value": -6, "max_value": -1}, "opt": {"type": "choice", "values": ["adam"]}}`,
		`, "limits": {"max_total_trials": 5, "max_concurrent_trials": 2}`), &sw)
	for round := 0; ; round++ {
		running := 0
		for _, tr := range sw.Trials {
			if !tr.State.Terminal() {
				running++
			}
		}
		if running > 2 {
			t.Fatalf("round %d: %d trials run at once, limit 2", round, running)
		}
		if sw.Status != api.SweepRunning {
			break
		}
		if round > 10 {
			t.Fatalf("the sweep does not end: %+v", sw)
		}
		for _, tr := range sw.Trials {
			if !tr.State.Terminal() {
				status := api.StatusSucceeded
				if tr.Index == 1 {
					status = api.StatusFailed
				}
				f.endTrial(tr.JobID, status)
				break
			}
		}
		f.pass()
		f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	}
	if sw.Status != api.SweepSucceeded || len(sw.Trials) != 5 {
		t.Fatalf("sweep %s with %d trials, want succeeded with 5", sw.Status, len(sw.Trials))
	}
	if sw.Trials[1].State != api.StatusFailed {
		t.Errorf("trial 1 is %s, want failed", sw.Trials[1].State)
	}
	// The same seed makes the same trials.
	var again api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "random", "seed": 5}`,
		`{"lr": {"type": "loguniform", "min_value": -6, "max_value": -1}, "opt": {"type": "choice", "values": ["adam"]}}`,
		`, "limits": {"max_total_trials": 5, "max_concurrent_trials": 2}`), &again)
	if again.Trials[1].Params["lr"] != sw.Trials[1].Params["lr"] {
		t.Errorf("seed 5 gave lr %s, then %s", sw.Trials[1].Params["lr"], again.Trials[1].Params["lr"])
	}
}

func TestSweepMedianStopping(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`,
		`{"lr": {"type": "choice", "values": [0.1, 0.01, 0.001]}, "opt": {"type": "choice", "values": ["adam"]}}`,
		`, "limits": {"max_concurrent_trials": 3}, "early_termination": {"type": "median_stopping"}`), &sw)
	post := func(index int, v float64) {
		f.mustCall("POST", "/v1/jobs/"+sw.Trials[index].JobID+"/metrics", systemToken,
			fmt.Sprintf(`{"metrics": [{"name": "val_loss", "value": %v}]}`, v), nil)
	}
	// Interval 1: trial 1 (0.9) is better than trial 0's 1.0, so it goes on;
	// trial 2's 2.0 is worse than the median 0.95 of the others.
	post(0, 1.0)
	post(1, 0.9)
	post(2, 2.0)
	f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	for i, tr := range sw.Trials {
		stopped := tr.Reason != nil && tr.Reason.Code == api.ReasonEarlyTerminated
		if stopped != (i == 2) {
			t.Errorf("trial %d: state %s, reason %+v; only trial 2 is to be stopped", i, tr.State, tr.Reason)
		}
	}
	if tr := sw.Trials[2]; tr.State != api.StatusCanceled || !strings.Contains(tr.Reason.Detail, "median_stopping at interval 1") {
		t.Errorf("trial 2: %s, %+v", tr.State, tr.Reason)
	}
	// The trial's job record says the same.
	var stopped api.JobDetail
	f.mustCall("GET", "/v1/jobs/"+sw.Trials[2].JobID, systemToken, "", &stopped)
	if stopped.Status != api.StatusCanceled || stopped.ReasonCode != api.ReasonEarlyTerminated || !strings.Contains(stopped.Reason, "median_stopping at interval 1") {
		t.Errorf("trial 2's job: %s %q (%s), want canceled, early_terminated and the rule", stopped.Status, stopped.ReasonCode, stopped.Reason)
	}
	if sw.Best == nil || sw.Best.Index != 1 || *sw.Best.BestMetric != 0.9 {
		t.Errorf("best %+v, want trial 1 at 0.9", sw.Best)
	}
	var trials api.SweepTrials
	f.mustCall("GET", "/v1/sweeps/"+sw.ID+"/trials", systemToken, "", &trials)
	var order []int
	for _, tr := range trials.Trials {
		order = append(order, tr.Index)
	}
	if !slices.Equal(order, []int{1, 0, 2}) {
		t.Errorf("trials by objective %v, want [1 0 2]", order)
	}
}

func TestSweepCancelCascades(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`, twoByTwo, `, "limits": {"max_concurrent_trials": 3}`), &sw)
	f.mustCall("POST", "/v1/sweeps/"+sw.ID+"/cancel", systemToken, "", &sw)
	if sw.Status != api.SweepCanceled || len(sw.Trials) != 3 {
		t.Fatalf("sweep %s with %d trials, want canceled with 3", sw.Status, len(sw.Trials))
	}
	for _, tr := range sw.Trials {
		if tr.State != api.StatusCanceled {
			t.Errorf("trial %d is %s after its sweep was canceled", tr.Index, tr.State)
		}
	}
	// A canceled sweep makes no more trials.
	f.pass()
	f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	if len(sw.Trials) != 3 {
		t.Errorf("%d trials after the cancel, want 3", len(sw.Trials))
	}
}

func TestSweepRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct {
		body string
		code int
		want string
	}{
		{sweepBody(`{"type": "grid"}`, `{"lr": {"type": "uniform", "min_value": 0, "max_value": 1}}`, ""), http.StatusUnprocessableEntity, "search_space.lr.type uniform is continuous"},
		{sweepBody(`{"type": "grid"}`, twoByTwo, `, "limits": {"max_total_trials": -1}`), http.StatusUnprocessableEntity, "limits.max_total_trials"},
		{`{"trial": {"command": ["x"]}, "sampling": {"type": "grid"}, "search_space": ` + twoByTwo + `, "objective": {"metric": "m", "goal": "minimize"}}`,
			http.StatusUnprocessableEntity, "trial"},
		{`[]`, http.StatusBadRequest, "sweep spec must be a JSON object"},
	} {
		code, body := f.call("POST", "/v1/sweeps", systemToken, tt.body)
		if code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("POST /v1/sweeps %s: %d %s; want %d with %q", tt.body, code, body, tt.code, tt.want)
		}
	}
	if code, _ := f.call("GET", "/v1/sweeps/nope", systemToken, ""); code != http.StatusNotFound {
		t.Errorf("GET an unknown sweep: %d, want 404", code)
	}
}

// TestSweepLoopJudgesLogMetrics: points a worker records from a job's log
// reach no API handler; the leader's pass judges them, once per interval.
func TestSweepLoopJudgesLogMetrics(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`, twoByTwo,
		`, "limits": {"max_concurrent_trials": 2}, "early_termination": {"type": "bandit", "slack_amount": 0.1}`), &sw)
	record := func(index int, v float64) {
		if err := f.st.AppendMetrics(context.Background(), sw.Trials[index].JobID,
			[]store.MetricPoint{{Name: "val_loss", Step: store.NextStep, Value: v, Time: time.Now()}}); err != nil {
			t.Fatal(err)
		}
	}
	// Bandit at interval 1: trial 1's 0.75 is past trial 0's 0.5 + 0.1.
	record(0, 0.5)
	record(1, 0.75)
	f.pass()
	f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	if tr := sw.Trials[1]; tr.State != api.StatusCanceled || tr.Reason == nil || tr.Reason.Code != api.ReasonEarlyTerminated {
		t.Fatalf("trial 1: %s %+v, want early_terminated", tr.State, tr.Reason)
	}
	if tr := sw.Trials[0]; tr.State.Terminal() {
		t.Fatalf("trial 0 is %s, the better one", tr.State)
	}
	// Its place is taken by the next trial.
	if len(sw.Trials) != 3 {
		t.Fatalf("%d trials after the stop, want 3", len(sw.Trials))
	}
}

// TestSweepSurvivesARestart: another gateway's controller, over the same
// Redis, goes on with a sweep; a trial the first one made but did not
// record (it died in between) is found under its Idempotency-Key, not made
// twice.
func TestSweepSurvivesARestart(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`, twoByTwo, `, "limits": {"max_concurrent_trials": 1}`), &sw)
	// The first gateway makes trial 1's job, then dies before it records it.
	rec, err := f.st.GetSweep(ctx, DefaultWorkspace, sw.ID)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string]string{"lr": "0.1", "opt": "sgd"}
	js, err := sweep.RenderTrial(rec.Spec, sw.ID, 1, params)
	if err != nil {
		t.Fatal(err)
	}
	orphan, err := f.plane.Jobs.Submit(ctx, job.Request{Workspace: DefaultWorkspace, Actor: "sweep:" + sw.ID, Spec: js,
		IdempotencyKey: "sweep-" + sw.ID + "-trial-1"})
	if err != nil {
		t.Fatal(err)
	}
	f.endTrial(sw.Trials[0].JobID, api.StatusSucceeded)
	// A new gateway process: its own control plane over the same Redis.
	_, plane := newGateway(t, Config{AdminToken: systemToken}, control.Config{}, f.g.rdb, f.st, nil, nil)
	seen := map[string]bool{}
	for round := 0; ; round++ {
		if err := plane.Sweeps.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
		if sw.Status != api.SweepRunning || round > 6 {
			break
		}
		for _, tr := range sw.Trials {
			if !tr.State.Terminal() {
				f.endTrial(tr.JobID, api.StatusSucceeded)
			}
		}
	}
	if sw.Status != api.SweepSucceeded || len(sw.Trials) != 4 {
		t.Fatalf("sweep %s with %d trials, want succeeded with 4", sw.Status, len(sw.Trials))
	}
	if sw.Trials[1].JobID != orphan.Job.ID {
		t.Errorf("trial 1 is job %s; the first gateway made it as %s", sw.Trials[1].JobID, orphan.Job.ID)
	}
	for _, tr := range sw.Trials {
		if seen[tr.JobID] {
			t.Errorf("job %s is two trials", tr.JobID)
		}
		seen[tr.JobID] = true
	}
	var kids struct{ Jobs []api.Job }
	f.mustCall("GET", "/v1/jobs/"+sw.ID+"/children", systemToken, "", &kids)
	if len(kids.Jobs) != 4 {
		t.Errorf("the sweep's job has %d children, want 4 (no trial made twice)", len(kids.Jobs))
	}
}

// TestSweepJudgesEveryInterval: points that arrive together (a batch from
// a job's log, or one request) are judged one interval at a time, so a
// rule that fires at interval 2 fires even when interval 3's point came
// with it and would pass.
func TestSweepJudgesEveryInterval(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`,
		`{"lr": {"type": "choice", "values": [0.1, 0.01]}, "opt": {"type": "choice", "values": ["adam"]}}`,
		`, "limits": {"max_concurrent_trials": 2}, "early_termination": {"type": "bandit", "slack_amount": 0.1}`), &sw)
	post := func(index int, vs ...float64) {
		var pts []string
		for _, v := range vs {
			pts = append(pts, fmt.Sprintf(`{"name": "val_loss", "value": %v}`, v))
		}
		f.mustCall("POST", "/v1/jobs/"+sw.Trials[index].JobID+"/metrics", systemToken, `{"metrics": [`+strings.Join(pts, ",")+`]}`, nil)
	}
	post(0, 1, 1, 1)
	post(1, 1.0, 5, 1.0) // 5 at interval 2 is outside 1+0.1
	f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	if tr := sw.Trials[1]; tr.Reason == nil || tr.Reason.Code != api.ReasonEarlyTerminated || !strings.Contains(tr.Reason.Detail, "at interval 2:") {
		t.Errorf("trial 1: %s %+v; want stopped at interval 2", tr.State, tr.Reason)
	}
	if tr := sw.Trials[0]; tr.Reason != nil {
		t.Errorf("trial 0 was stopped: %+v", tr.Reason)
	}
}

// TestSweepList: GET /v1/sweeps pages the workspace's sweeps newest first,
// each with its status and how many trials it has made, and refuses a bad
// limit, cursor or parameter naming it.
func TestSweepList(t *testing.T) {
	f := newFixture(t)
	var made []api.Sweep
	for range 3 {
		var sw api.Sweep
		f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "grid"}`, twoByTwo, `, "limits": {"max_concurrent_trials": 2}`), &sw)
		made = append(made, sw)
	}
	f.mustCall("POST", "/v1/sweeps/"+made[0].ID+"/cancel", systemToken, "", nil)

	var page1, page2 api.SweepList
	f.mustCall("GET", "/v1/sweeps?limit=2", systemToken, "", &page1)
	if len(page1.Sweeps) != 2 || page1.Sweeps[0].ID != made[2].ID || page1.Sweeps[1].ID != made[1].ID || page1.NextCursor == "" {
		t.Fatalf("first page = %+v, want sweeps %s, %s and a cursor", page1, made[2].ID, made[1].ID)
	}
	s := page1.Sweeps[0]
	if s.Name != "tune" || s.Status != api.SweepRunning || s.Trials != 2 || s.MaxTotalTrials != 4 ||
		s.Sampling.Type != api.SamplingGrid || s.Objective.Metric != "val_loss" || s.Sampling.Seed == nil {
		t.Errorf("summary = %+v", s)
	}
	for _, sw := range made {
		if sw.Seed < 0 || sw.Seed >= 1<<53 {
			t.Errorf("picked seed %d is not below 2^53: a JSON reader of doubles would show another", sw.Seed)
		}
	}
	f.mustCall("GET", "/v1/sweeps?limit=2&cursor="+page1.NextCursor, systemToken, "", &page2)
	if len(page2.Sweeps) != 1 || page2.Sweeps[0].ID != made[0].ID || page2.Sweeps[0].Status != api.SweepCanceled ||
		page2.Sweeps[0].EndedAt == nil || page2.NextCursor != "" {
		t.Fatalf("second page = %+v, want the canceled sweep %s and no cursor", page2, made[0].ID)
	}

	for q, names := range map[string]string{"limit=0": "limit", "limit=x": "limit", "cursor=((": "cursor", "status=running": "status"} {
		code, body := f.call("GET", "/v1/sweeps?"+q, systemToken, "")
		var e api.ErrorBody
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error.Message, names) {
			t.Errorf("GET /v1/sweeps?%s: %d %s, want 400 naming %s", q, code, body, names)
		}
	}

	f.workspace("team-b", api.Quotas{})
	var other api.SweepList
	f.mustCall("GET", "/v1/sweeps", f.token("team-b", api.ScopeRead).Secret, "", &other)
	if len(other.Sweeps) != 0 {
		t.Fatalf("another workspace lists %+v", other.Sweeps)
	}
}
