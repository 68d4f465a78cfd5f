package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// sweepOfTrainer is a sweep spec (JSON) of the example trainer over lr,
// reading examples/data through the worker's mount.
func sweepOfTrainer(epochs int, epochSeconds float64, space, sampling, extra string) string {
	return fmt.Sprintf(`{"name": "tune", "trial": {"image": %q, "command": ["/bin/train", "-epochs", "%d", "-epoch-seconds", "%v",
		"-lr", "{{ .params.lr }}", "-data", "/mounts/examples"], "timeout_seconds": 300},
		"search_space": %s, "sampling": %s, "objective": {"metric": "loss", "goal": "minimize"}%s}`,
		testenv.ExampleImage, epochs, epochSeconds, space, sampling, extra)
}

func (c *cluster) startSweep(body string) api.Sweep {
	c.t.Helper()
	var raw json.RawMessage
	code := c.do("POST", "/v1/sweeps", body, &raw)
	if code != http.StatusCreated {
		c.t.Fatalf("POST /v1/sweeps: %d %s", code, raw)
	}
	var sw api.Sweep
	if err := json.Unmarshal(raw, &sw); err != nil {
		c.t.Fatal(err)
	}
	return sw
}

func (c *cluster) waitSweep(id string) api.Sweep {
	c.t.Helper()
	var sw api.Sweep
	testenv.Eventually(c.t, 4*time.Minute, func() bool {
		return c.do("GET", "/v1/sweeps/"+id, "", &sw) == http.StatusOK && sw.Status != api.SweepRunning
	}, "sweep %s did not end", id)
	return sw
}

// losses are the loss points trial job id recorded, in step order.
func (c *cluster) losses(id string) []float64 {
	c.t.Helper()
	m, err := c.api.Metrics(context.Background(), id, "loss")
	if err != nil {
		c.t.Fatal(err)
	}
	var out []float64
	for _, p := range m.Metrics["loss"] {
		out = append(out, p.Value)
	}
	return out
}

// checkBest: every trial's job ended as its sweep says, and the sweep's
// best trial is the one with the lowest loss recorded.
func (c *cluster) checkBest(sw api.Sweep) {
	c.t.Helper()
	best, bestLoss := -1, math.Inf(1)
	for _, tr := range sw.Trials {
		j := c.get(tr.JobID)
		if j.Status != tr.State || j.Params["lr"] != tr.Params["lr"] {
			c.t.Errorf("trial %d: job %s lr %s, sweep says %s lr %s", tr.Index, j.Status, j.Params["lr"], tr.State, tr.Params["lr"])
		}
		for _, v := range c.losses(tr.JobID) {
			if v < bestLoss {
				best, bestLoss = tr.Index, v
			}
		}
	}
	if sw.Best == nil || sw.Best.Index != best || *sw.Best.BestMetric != bestLoss {
		c.t.Errorf("best trial %+v; the recorded losses say trial %d at %v", sw.Best, best, bestLoss)
	}
}

// TestSweepsOfTheExampleTrainer runs grid, random and bayesian sweeps of
// the example trainer in podman, through a real gateway and worker, and
// each early termination rule, whose stops are checked against the rule
// computed here from the losses the trials recorded.
func TestSweepsOfTheExampleTrainer(t *testing.T) {
	c := newCluster(t)
	data, err := filepath.Abs("../../examples/data")
	if err != nil {
		t.Fatal(err)
	}
	c.startWorker("w1", "--mount", "examples="+data)

	t.Run("grid", func(t *testing.T) {
		c := c.on(t)
		sw := c.waitSweep(c.startSweep(sweepOfTrainer(4, 0, `{"lr": {"type": "choice", "values": [0.05, 2, 0.5]}}`,
			`{"type": "grid"}`, `, "limits": {"max_concurrent_trials": 3}`)).ID)
		if sw.Status != api.SweepSucceeded || len(sw.Trials) != 3 {
			t.Fatalf("sweep %s with %d trials, want succeeded with 3", sw.Status, len(sw.Trials))
		}
		c.checkBest(sw)
		if sw.Best.Params["lr"] != "2" {
			t.Errorf("best lr %s, want 2 (the trainer learns fastest with it)", sw.Best.Params["lr"])
		}
	})
	t.Run("random", func(t *testing.T) {
		c := c.on(t)
		body := sweepOfTrainer(4, 0, `{"lr": {"type": "loguniform", "min_value": -5, "max_value": 1}}`,
			`{"type": "random", "seed": 42}`, `, "limits": {"max_total_trials": 4, "max_concurrent_trials": 2}`)
		sw := c.waitSweep(c.startSweep(body).ID)
		if sw.Status != api.SweepSucceeded || len(sw.Trials) != 4 {
			t.Fatalf("sweep %s with %d trials, want succeeded with 4", sw.Status, len(sw.Trials))
		}
		c.checkBest(sw)
		// The seed makes the same trials: a second sweep starts with them.
		again := c.startSweep(body)
		for i, tr := range again.Trials {
			if tr.Params["lr"] != sw.Trials[i].Params["lr"] {
				t.Errorf("seed 42's trial %d: lr %s, then %s", i, sw.Trials[i].Params["lr"], tr.Params["lr"])
			}
		}
		c.do("POST", "/v1/sweeps/"+again.ID+"/cancel", "", nil)
	})
	t.Run("bayesian", func(t *testing.T) {
		c := c.on(t)
		sw := c.waitSweep(c.startSweep(sweepOfTrainer(4, 0, `{"lr": {"type": "uniform", "min_value": 0.001, "max_value": 4}}`,
			`{"type": "bayesian", "seed": 5}`, `, "limits": {"max_total_trials": 6, "max_concurrent_trials": 1}`)).ID)
		if sw.Status != api.SweepSucceeded || len(sw.Trials) != 6 {
			t.Fatalf("sweep %s with %d trials, want succeeded with 6", sw.Status, len(sw.Trials))
		}
		c.checkBest(sw)
		seen := map[string]bool{}
		for _, tr := range sw.Trials {
			if tr.State != api.StatusSucceeded || seen[tr.Params["lr"]] {
				t.Errorf("trial %d: %s with lr %s (seen before: %v)", tr.Index, tr.State, tr.Params["lr"], seen[tr.Params["lr"]])
			}
			seen[tr.Params["lr"]] = true
		}
	})

	t.Run("asha", func(t *testing.T) {
		c := c.on(t)
		// Rungs 2, 6, 18: each trial first runs 2 epochs; the best third of
		// those that reached a rung go on from their checkpoint.
		body := strings.Replace(sweepOfTrainer(0, 0, `{"lr": {"type": "choice", "values": [2, 0.5, 0.05, 0.001, 8, 0.01]}}`,
			`{"type": "grid"}`, `, "limits": {"max_concurrent_trials": 2},
			"early_termination": {"type": "asha", "reduction_factor": 3, "delay_evaluation": 2, "max_resource": 18}`),
			`"-epochs", "0"`, `"-epochs", "{{ .budget }}"`, 1)
		sw := c.waitSweep(c.startSweep(body).ID)
		if sw.Status != api.SweepSucceeded || len(sw.Trials) != 6 {
			t.Fatalf("sweep %s with %d trials, want succeeded with 6", sw.Status, len(sw.Trials))
		}
		rungs := []int{2, 6, 18}
		promoted := 0
		for _, tr := range sw.Trials {
			if len(tr.Segments) != tr.Rung {
				t.Errorf("trial %d at rung %d has %d earlier segments", tr.Index, tr.Rung, len(tr.Segments))
			}
			if tr.Rung == 0 {
				if tr.Reason == nil || tr.Reason.Code != api.ReasonEarlyTerminated || !strings.Contains(tr.Reason.Detail, "not promoted past rung 0 (interval 2)") {
					t.Errorf("trial %d stayed at rung 0: %+v, want early_terminated at rung 0", tr.Index, tr.Reason)
				}
				continue
			}
			promoted++
			// The promoted segment went on from the first one's checkpoint.
			j := c.get(tr.JobID)
			if j.Spec.CheckpointFrom != tr.Segments[0] || j.Status != api.StatusSucceeded {
				t.Errorf("trial %d's rung %d job: %s, checkpoint_from %q; want succeeded from %s", tr.Index, tr.Rung, j.Status, j.Spec.CheckpointFrom, tr.Segments[0])
			}
			if log := c.logs(tr.JobID); !strings.Contains(log, fmt.Sprintf("resumed from checkpoint at epoch %d", rungs[tr.Rung-1])) {
				t.Errorf("trial %d's rung %d log does not say it resumed at epoch %d:\n%s", tr.Index, tr.Rung, rungs[tr.Rung-1], log)
			}
			m, err := c.api.Metrics(context.Background(), tr.JobID, "loss")
			if err != nil {
				t.Fatal(err)
			}
			if pts := m.Metrics["loss"]; len(pts) == 0 || pts[0].Step != int64(rungs[tr.Rung-1]) || len(pts) != rungs[tr.Rung]-rungs[tr.Rung-1] {
				t.Errorf("trial %d's rung %d job reported %d points from step %v; want %d from step %d", tr.Index, tr.Rung, len(pts), pts, rungs[tr.Rung]-rungs[tr.Rung-1], rungs[tr.Rung-1])
			}
			if tr.Step != rungs[tr.Rung] {
				t.Errorf("trial %d's series has %d points, want %d (its segments')", tr.Index, tr.Step, rungs[tr.Rung])
			}
		}
		// Six reached rung 0, so the best two of them went on (not more).
		if promoted != 2 {
			t.Errorf("%d trials were promoted, want 2 (a third of 6)", promoted)
		}
	})

	// The rules: one trial at a time, best first, so that each trial is
	// judged against the whole recorded series of the ones before it and
	// the check below is exact. 20 epochs of 0.25s leave a stopped trial
	// seconds to be stopped in after its interval 2.
	space := `{"lr": {"type": "choice", "values": [2, 0.5, 0.05, 0.001]}}`
	for _, tc := range []struct {
		name, policy string
		rule         func(n int, own []float64, peers [][]float64) bool
	}{
		{"median_stopping", `{"type": "median_stopping", "delay_evaluation": 2}`, func(n int, own []float64, peers [][]float64) bool {
			var avgs []float64
			for _, p := range peers {
				var sum float64
				for _, v := range p[:n] {
					sum += v
				}
				avgs = append(avgs, sum/float64(n))
			}
			return len(avgs) > 0 && slices.Min(own[:n]) > medianOf(avgs)
		}},
		{"bandit_factor", `{"type": "bandit", "slack_factor": 0.5, "delay_evaluation": 2}`, func(n int, own []float64, peers [][]float64) bool {
			top := math.Inf(1)
			for _, p := range peers {
				top = min(top, slices.Min(p[:n]))
			}
			return len(peers) > 0 && own[n-1] > top+math.Abs(top)*0.5
		}},
		{"bandit_amount", `{"type": "bandit", "slack_amount": 0.3, "delay_evaluation": 2}`, func(n int, own []float64, peers [][]float64) bool {
			top := math.Inf(1)
			for _, p := range peers {
				top = min(top, slices.Min(p[:n]))
			}
			return len(peers) > 0 && own[n-1] > top+0.3
		}},
		{"truncation", `{"type": "truncation", "truncation_percentage": 50, "delay_evaluation": 2}`, func(n int, own []float64, peers [][]float64) bool {
			cut := (len(peers) + 1) * 50 / 100
			worse := 0 // peers at least as bad: a tie ranks this, the later trial, worse
			for _, p := range peers {
				if p[n-1] < own[n-1] {
					worse++
				}
			}
			return worse >= len(peers)+1-cut
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := c.on(t)
			sw := c.waitSweep(c.startSweep(sweepOfTrainer(20, 0.25, space, `{"type": "grid"}`,
				`, "limits": {"max_concurrent_trials": 1}, "early_termination": `+tc.policy)).ID)
			if sw.Status != api.SweepSucceeded || len(sw.Trials) != 4 {
				t.Fatalf("sweep %s with %d trials, want succeeded with 4", sw.Status, len(sw.Trials))
			}
			var series [][]float64
			stopped := 0
			for _, tr := range sw.Trials {
				own := c.losses(tr.JobID)
				want := 0 // the interval the rule stops it at; 0: never
				for n := 2; n <= len(own) && want == 0; n++ {
					var peers [][]float64
					for _, p := range series {
						if len(p) >= n {
							peers = append(peers, p)
						}
					}
					if tc.rule(n, own, peers) {
						want = n
					}
				}
				series = append(series, own)
				j := c.get(tr.JobID)
				if want == 0 {
					if tr.Reason != nil || j.Status != api.StatusSucceeded || len(own) != 20 {
						t.Errorf("trial %d (lr %s) is not for the rule to stop, yet: %s %+v with %d points", tr.Index, tr.Params["lr"], j.Status, tr.Reason, len(own))
					}
					continue
				}
				stopped++
				if tr.Reason == nil || tr.Reason.Code != api.ReasonEarlyTerminated || !strings.Contains(tr.Reason.Detail, fmt.Sprintf("at interval %d:", want)) {
					t.Errorf("trial %d (lr %s): %+v; want stopped at interval %d", tr.Index, tr.Params["lr"], tr.Reason, want)
				}
				if j.Status != api.StatusCanceled || j.ReasonCode != api.ReasonEarlyTerminated || len(own) == 20 {
					t.Errorf("trial %d's job: %s %q with %d points; want canceled early_terminated before its end", tr.Index, j.Status, j.ReasonCode, len(own))
				}
			}
			if stopped == 0 || stopped == len(sw.Trials) {
				t.Errorf("the rule stopped %d of %d trials: this sweep is to show both kinds", stopped, len(sw.Trials))
			}
			b, _ := json.Marshal(sw.Trials)
			t.Logf("trials: %s", b)
		})
	}
}

func medianOf(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// on is the same cluster reporting to subtest t.
func (c *cluster) on(t *testing.T) *cluster {
	cc := *c
	cc.t = t
	return &cc
}
