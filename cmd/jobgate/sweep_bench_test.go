package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
)

// BenchmarkSweepASHAvsRandom (BENCHMARKS.md "Sweeps"): 64 trials of the
// example trainer (27 epochs of 0.1s at most) over 4 workers of one slot
// sharing a checkpoint folder, random sampling with the same seed and
// search space, once without early termination and once under asha
// (rungs 3, 9, 27, reduction_factor 3). It reports, for each, the wall time
// to the best trial's end and to the sweep's end, the best loss, and the
// trial-seconds spent (each trial job's start to its end).
func BenchmarkSweepASHAvsRandom(b *testing.B) {
	c := newClusterTB(b)
	data, err := filepath.Abs("../../examples/data")
	if err != nil {
		b.Fatal(err)
	}
	ckpt := b.TempDir()
	for i := range 4 {
		c.startWorker(fmt.Sprintf("w%d", i), "--slots", "1", "--mount", "examples="+data, "--checkpoint-dir", ckpt)
	}
	space := `{"lr": {"type": "loguniform", "min_value": -7, "max_value": 2}}`
	limits := `, "limits": {"max_total_trials": 64, "max_concurrent_trials": 4}`
	runs := []struct{ name, body string }{
		{"random", sweepOfTrainer(27, 0.1, space, `{"type": "random", "seed": 7}`, limits)},
		{"asha", strings.Replace(sweepOfTrainer(0, 0.1, space, `{"type": "random", "seed": 7}`, limits+
			`, "early_termination": {"type": "asha", "reduction_factor": 3, "delay_evaluation": 3, "max_resource": 27}`),
			`"-epochs", "0"`, `"-epochs", "{{ .budget }}"`, 1)},
	}
	for range b.N {
		for _, r := range runs {
			sw := c.waitSweep(c.startSweep(r.body).ID)
			if sw.Status != api.SweepSucceeded || sw.Best == nil {
				b.Fatalf("%s: sweep %s, best %+v", r.name, sw.Status, sw.Best)
			}
			var trialSeconds float64
			var bestEnd time.Time
			for _, tr := range sw.Trials {
				for _, id := range append(tr.Segments, tr.JobID) {
					j := c.get(id)
					if j.StartedAt != nil && j.FinishedAt != nil {
						trialSeconds += j.FinishedAt.Sub(*j.StartedAt).Seconds()
					}
					if tr.Index == sw.Best.Index && id == tr.JobID && j.FinishedAt != nil {
						bestEnd = *j.FinishedAt
					}
				}
			}
			var jobs api.JobList
			if code := c.do("GET", "/v1/jobs/"+sw.ID+"/children?limit=500", "", &jobs); code != http.StatusOK {
				b.Fatalf("children: %d", code)
			}
			toBest, toEnd := bestEnd.Sub(sw.CreatedAt).Seconds(), sw.EndedAt.Sub(sw.CreatedAt).Seconds()
			b.Logf("%s: best loss %.6f (trial %d, lr %s) at %.1fs; sweep ended at %.1fs; %.1f trial-seconds in %d jobs",
				r.name, *sw.Best.BestMetric, sw.Best.Index, sw.Best.Params["lr"], toBest, toEnd, trialSeconds, len(jobs.Jobs))
			b.ReportMetric(toBest, r.name+"-s-to-best")
			b.ReportMetric(*sw.Best.BestMetric, r.name+"-best-loss")
			b.ReportMetric(trialSeconds, r.name+"-trial-s")
		}
	}
}
