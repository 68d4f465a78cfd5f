package gateway

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/sweep"
)

// TestSweepBayesian runs a bayesian sweep through the API one trial at a
// time, each trial reporting (lr-0.3)^2: every trial's job runs the
// parameters its sweep shows; the first trials are random sampling's and
// the rest the model's, which finds the minimum.
func TestSweepBayesian(t *testing.T) {
	f := newFixture(t)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "bayesian", "seed": 11}`,
		`{"lr": {"type": "uniform", "min_value": 0, "max_value": 1}, "opt": {"type": "choice", "values": ["adam", "sgd"]}}`,
		`, "limits": {"max_total_trials": 24}`), &sw)
	for round := 0; sw.Status == api.SweepRunning; round++ {
		if round > 30 {
			t.Fatalf("the sweep does not end: %+v", sw)
		}
		for _, tr := range sw.Trials {
			if tr.State.Terminal() {
				continue
			}
			var j api.JobDetail
			f.mustCall("GET", "/v1/jobs/"+tr.JobID, systemToken, "", &j)
			if want := []string{"train", "--lr=" + tr.Params["lr"]}; !slices.Equal(j.Spec.Command, want) {
				t.Fatalf("trial %d runs %q, want %q", tr.Index, j.Spec.Command, want)
			}
			lr, err := strconv.ParseFloat(tr.Params["lr"], 64)
			if err != nil {
				t.Fatal(err)
			}
			f.mustCall("POST", "/v1/jobs/"+tr.JobID+"/metrics", systemToken,
				fmt.Sprintf(`{"metrics": [{"name": "val_loss", "value": %v}]}`, (lr-0.3)*(lr-0.3)), nil)
			f.endTrial(tr.JobID, api.StatusSucceeded)
		}
		f.pass()
		f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	}
	if sw.Status != api.SweepSucceeded || len(sw.Trials) != 24 {
		t.Fatalf("sweep %s with %d trials, want succeeded with 24", sw.Status, len(sw.Trials))
	}
	// The first trials are random sampling's with the same seed; after
	// them the model's (internal/sweep's tests check that it learns).
	spec := sw.Spec
	spec.Sampling.Type = api.SamplingRandom
	random, err := sweep.NewSampler(spec, sw.Seed)
	if err != nil {
		t.Fatal(err)
	}
	const start = 8 // a third of 24
	for _, tr := range sw.Trials {
		want, err := random.Trial(tr.Index)
		if err != nil {
			t.Fatal(err)
		}
		if same := fmt.Sprint(want) == fmt.Sprint(tr.Params); same != (tr.Index < start) {
			t.Errorf("trial %d's params %v; random sampling's %v (the first %d are to be random's, the rest the model's)", tr.Index, tr.Params, want, start)
		}
	}
	if sw.Best == nil || *sw.Best.BestMetric > 0.01 {
		t.Errorf("best %+v, want one within 0.1 of lr 0.3", sw.Best)
	}
}

// TestSweepBayesianDecidedTrialSurvives: a trial whose parameters were
// decided (recorded) by a gateway that died before it made the job is made
// by the next gateway with those parameters, once.
func TestSweepBayesianDecidedTrialSurvives(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", systemToken, sweepBody(`{"type": "bayesian", "seed": 3}`,
		`{"lr": {"type": "uniform", "min_value": 0, "max_value": 1}, "opt": {"type": "choice", "values": ["adam"]}}`,
		`, "limits": {"max_total_trials": 3}`), &sw)
	if len(sw.Trials) != 1 {
		t.Fatalf("%d trials, want 1", len(sw.Trials))
	}
	f.endTrial(sw.Trials[0].JobID, api.StatusSucceeded)
	// The dying gateway decided trial 1 (as Controller.decide does) and
	// made no job.
	decided := map[string]string{"lr": "0.125", "opt": "adam"}
	if _, err := f.st.UpdateSweep(ctx, DefaultWorkspace, sw.ID, func(rec *store.SweepRecord) (bool, error) {
		rec.Trials = append(rec.Trials, store.SweepTrialState{Index: 1, Params: decided})
		rec.Next = 2
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, plane := newGateway(t, Config{AdminToken: systemToken}, control.Config{}, f.g.rdb, f.st, nil, nil)
	for range 2 { // twice: the second pass makes nothing more
		if err := plane.Sweeps.Pass(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f.mustCall("GET", "/v1/sweeps/"+sw.ID, systemToken, "", &sw)
	if len(sw.Trials) != 2 || sw.Trials[1].JobID == "" {
		t.Fatalf("trials %+v, want trial 1 made", sw.Trials)
	}
	var j api.JobDetail
	f.mustCall("GET", "/v1/jobs/"+sw.Trials[1].JobID, systemToken, "", &j)
	if want := []string{"train", "--lr=0.125"}; !slices.Equal(j.Spec.Command, want) || j.Params["lr"] != "0.125" {
		t.Errorf("trial 1 runs %q with params %v, want %q and lr 0.125", j.Spec.Command, j.Params, want)
	}
	kids, err := f.st.Children(ctx, sw.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 2 {
		t.Errorf("the sweep has %d trial jobs, want 2", len(kids))
	}
}
