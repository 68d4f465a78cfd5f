package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
)

const sweepYAML = `kind: sweep
trial:
  image: localhost/jobgate-examples:latest
  command: [train, "--lr={{ .params.lr }}"]
search_space:
  lr: {type: choice, values: [0.1, 0.01]}
sampling: {type: grid}
objective: {metric: val_loss, goal: minimize}
early_termination: {type: bandit, slack_amount: 0.2}
`

func TestSweepCLI(t *testing.T) {
	var posted []api.SweepSpec
	one, two := 0.3, 0.7
	trials := []api.SweepTrial{
		{Index: 1, JobID: "j1", Params: map[string]string{"lr": "0.01"}, State: api.StatusSucceeded, Metric: &one, BestMetric: &one, Step: 3},
		{Index: 0, JobID: "j0", Params: map[string]string{"lr": "0.1"}, State: api.StatusCanceled, Metric: &two, BestMetric: &two, Step: 1,
			Reason: &api.Reason{Code: api.ReasonEarlyTerminated, Detail: "bandit (slack_amount 0.2) at interval 1"}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/sweeps":
			var s api.SweepSpec
			if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
				t.Error(err)
			}
			posted = append(posted, s)
			writeResp(w, http.StatusCreated, api.Sweep{ID: "sw1", Status: api.SweepRunning, Spec: s, Trials: trials[:1]})
		case "GET /v1/sweeps":
			if r.URL.Query().Get("limit") != "1" || r.URL.Query().Get("cursor") != "c0" {
				t.Errorf("sweep list asked %s", r.URL.RawQuery)
			}
			writeResp(w, http.StatusOK, api.SweepList{NextCursor: "c1", Sweeps: []api.SweepSummary{{ID: "sw1", Name: "tune", Status: api.SweepRunning,
				Sampling: api.Sampling{Type: api.SamplingRandom}, Objective: api.Objective{Metric: "val_loss", Goal: api.GoalMinimize},
				Trials: 1, MaxTotalTrials: 2, CreatedAt: time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)}}})
		case "GET /v1/sweeps/sw1/trials":
			writeResp(w, http.StatusOK, api.SweepTrials{Trials: trials})
		case "POST /v1/sweeps/sw1/cancel":
			writeResp(w, http.StatusOK, api.Sweep{ID: "sw1", Status: api.SweepCanceled})
		default:
			writeErr(w, http.StatusNotFound, "not_found", r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)

	r := runCLI(t, envFor(srv.URL), sweepYAML, "sweep", "submit", "-f", "-")
	if r.err != nil {
		t.Fatalf("sweep submit: %v\n%s", r.err, r.stderr)
	}
	if len(posted) != 1 || posted[0].Limits.MaxTotalTrials != 2 || posted[0].Trial.Command[1] != "--lr={{ .params.lr }}" {
		t.Fatalf("posted %+v", posted)
	}
	if !strings.Contains(r.stdout, "sweep sw1: running, 1 of 2 trials made") {
		t.Errorf("submit printed %q", r.stdout)
	}

	r = runCLI(t, envFor(srv.URL), "", "sweep", "list", "--limit", "1", "--cursor", "c0")
	if r.err != nil {
		t.Fatalf("sweep list: %v\n%s", r.err, r.stderr)
	}
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 ||
		strings.Join(strings.Fields(lines[1]), " ") != "sw1 tune running random minimize val_loss 1/2 2026-12-03T08:00:00Z" ||
		!strings.Contains(r.stderr, "--cursor c1") {
		t.Errorf("sweep list printed %q, %q", r.stdout, r.stderr)
	}

	r = runCLI(t, envFor(srv.URL), "", "sweep", "trials", "sw1")
	if r.err != nil {
		t.Fatalf("sweep trials: %v", r.err)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "1 ") || !strings.HasPrefix(lines[2], "0 ") ||
		!strings.Contains(lines[2], "early_terminated: bandit (slack_amount 0.2) at interval 1") {
		t.Errorf("trials table:\n%s", r.stdout)
	}

	if r = runCLI(t, envFor(srv.URL), "", "sweep", "cancel", "sw1"); r.err != nil || !strings.Contains(r.stdout, "canceled") {
		t.Errorf("sweep cancel: %v %q", r.err, r.stdout)
	}

	// A spec the contract refuses never leaves the machine.
	r = runCLI(t, envFor(srv.URL), strings.Replace(sweepYAML, "type: choice, values: [0.1, 0.01]", "type: uniform, min_value: 0, max_value: 1", 1),
		"sweep", "submit", "-f", "-")
	if r.err == nil || !strings.Contains(r.err.Error(), "search_space.lr.type uniform is continuous") || len(posted) != 1 {
		t.Errorf("a continuous grid: %v (%d posted)", r.err, len(posted))
	}
}
