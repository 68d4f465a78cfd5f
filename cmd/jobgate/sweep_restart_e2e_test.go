package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/testenv"
)

// gatewayProcessAt runs `jobgate gateway` as its own process on addr, so
// that a test can SIGKILL it; it is stopped with SIGTERM at cleanup.
func (c *cluster) gatewayProcessAt(addr string) *exec.Cmd {
	c.t.Helper()
	cmd := exec.Command(os.Args[0], "gateway", "--addr", addr, "--redis-url", c.redisAt(), "--artifacts-dir", c.artifacts,
		"--secrets-key-file", c.secretsKey, "--allow-callbacks-to", "loopback", "--allow-host-process-default", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "JOBGATE_TEST_AS_MAIN=1", "JOBGATE_TOKEN="+testToken)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	testenv.Eventually(c.t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "gateway process did not become ready")
	return cmd
}

// TestSweepSurvivesGatewayRestarts: the only gateway process is SIGKILLed,
// then restarted and stopped with SIGTERM and restarted again, while a
// sweep's trials run in podman; the sweep ends with each of its trials made
// once: as many trial jobs as max_total_trials, one per index, each ended.
func TestSweepSurvivesGatewayRestarts(t *testing.T) {
	c := newClusterTB(t)
	c.stopGateway()
	addr := freeAddr(t)
	c.gwURL, c.token = "http://"+addr, testToken
	c.api = client.New(c.gwURL, c.token)
	gw := c.gatewayProcessAt(addr)
	data, err := filepath.Abs("../../examples/data")
	if err != nil {
		t.Fatal(err)
	}
	c.startWorker("w1", "--mount", "examples="+data)

	const total = 6
	sw := c.startSweep(sweepOfTrainer(8, 0.25, `{"lr": {"type": "loguniform", "min_value": -4, "max_value": 1}}`,
		`{"type": "random", "seed": 9}`, `, "limits": {"max_total_trials": 6, "max_concurrent_trials": 2}`))
	made := func(n int) {
		testenv.Eventually(t, 2*time.Minute, func() bool {
			var cur api.Sweep
			return c.do("GET", "/v1/sweeps/"+sw.ID, "", &cur) == http.StatusOK && len(cur.Trials) >= n
		}, "the sweep never made %d trials", n)
	}
	made(3)
	if err := gw.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	gw.Wait()
	gw = c.gatewayProcessAt(addr)
	made(5)
	gw.Process.Signal(syscall.SIGTERM)
	gw.Wait()
	c.gatewayProcessAt(addr)

	sw = c.waitSweep(sw.ID)
	if sw.Status != api.SweepSucceeded || len(sw.Trials) != total {
		t.Fatalf("sweep %s with %d trials, want succeeded with %d", sw.Status, len(sw.Trials), total)
	}
	byJob := map[string]int{}
	for i, tr := range sw.Trials {
		if tr.Index != i || tr.JobID == "" || tr.State != api.StatusSucceeded {
			t.Errorf("trial %d: index %d, job %q, %s", i, tr.Index, tr.JobID, tr.State)
		}
		byJob[tr.JobID] = tr.Index
	}
	var kids api.JobList
	if code := c.do("GET", "/v1/jobs/"+sw.ID+"/children", "", &kids); code != http.StatusOK {
		t.Fatalf("children: %d", code)
	}
	if len(kids.Jobs) != total {
		t.Errorf("the sweep has %d trial jobs, want %d: a trial was made twice or forgotten", len(kids.Jobs), total)
	}
	for _, k := range kids.Jobs {
		if _, ok := byJob[k.ID]; !ok {
			t.Errorf("trial job %s (%s) is no trial of the sweep's", k.ID, k.Name)
		}
	}
}
