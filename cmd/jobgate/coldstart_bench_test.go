package main

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// BenchmarkColdStart measures a deployment's cold start from zero: the
// first request to an iris deployment scaled to zero (autoscale min 0, a
// scale-down delay of 1 s) is held by a `jobgate scoring` process while the
// controller starts a replica (a container job of /bin/modelserver on a real
// worker) and answered; each iteration waits for scaled_to_zero first.
// Against Knative's published 2-4 s. For BENCHMARKS.md:
//
//	make bench-coldstart
func BenchmarkColdStart(b *testing.B) {
	c := newClusterTB(b)
	c.startWorker("w1")
	c.startScoringProcess()
	ctx := context.Background()
	train := c.waitEnded(c.submit(api.JobSpec{Command: []string{"/bin/iris-train"}}).ID)
	if _, err := c.api.RegisterModel(ctx, "iris", train.ID, "model.json"); err != nil {
		b.Fatal(err)
	}
	spec := fmt.Sprintf(`{"name": "iris", "model": "iris:1", "image": %q, "command": ["/bin/modelserver"],
		"autoscale": {"min": 0, "max": 1, "scale_down_delay_seconds": 1}}`, testenv.ExampleImage)
	if code := c.do("POST", "/v1/deployments", spec, nil); code != http.StatusCreated {
		b.Fatalf("create deployment: %d", code)
	}
	var cold []time.Duration
	for b.Loop() {
		b.StopTimer()
		c.waitDeployment("iris", 60*time.Second, "scaled to zero", func(d api.Deployment) bool {
			return d.Status == api.DeploymentScaledToZero && len(d.Replicas) == 0
		})
		b.StartTimer()
		began := time.Now()
		if _, err := c.infer(ctx, "iris", ""); err != nil {
			b.Fatal(err)
		}
		cold = append(cold, time.Since(began))
	}
	reportPercentiles(b, cold)
}
