package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// bigOutputBytes is the output of TestTwoGiBOutputOnS3.
const bigOutputBytes = 2 << 30

// bigOutputHeapBound is what the gateway and the worker together may hold
// above the start while they move it: the S3 store's two 16 MiB parts, the
// HTTP buffers, and room for the rest of the process; far below the 2 GiB
// a whole-file buffer would take.
const bigOutputHeapBound = 256 << 20

// TestTwoGiBOutputOnS3: a host-process job writes 2 GiB of random bytes to
// its outputs; the worker collects them into a real SeaweedFS (a multipart
// upload), the gateway serves them, and the test downloads them and checks
// size and SHA-256 as they stream. The gateway and the worker run in this
// process (run()), so its live heap, sampled every 250 ms through the
// collect and the download, bounds what they hold: it must stay under
// bigOutputHeapBound above where it started.
func TestTwoGiBOutputOnS3(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 GiB")
	}
	c := newS3Cluster(t)
	c.startWorker("w1")
	peak := testenv.NewHeapPeak()
	var mu sync.Mutex // guards peak: the sampler and the test read it
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				peak.Sample()
				mu.Unlock()
			}
		}
	}()
	stopSampling := func() {
		select {
		case <-stop:
		default:
			close(stop)
			sampler.Wait()
		}
	}
	defer stopSampling()

	// The job logs the digest of what it wrote: what the download must
	// match.
	start := time.Now()
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, TimeoutSeconds: 1800, Command: []string{"/bin/sh", "-c",
		`set -e; head -c ` + strconv.Itoa(bigOutputBytes) + ` /dev/urandom | tee "$JOBGATE_OUTPUTS/big.bin" | sha256sum | sed 's/ .*//; s/^/sha256=/'`}})
	done := c.waitFor(j.ID, 10*time.Minute, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	if done.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)\n%s", done.Status, done.Reason, c.logs(j.ID))
	}
	collected := time.Since(start)
	mu.Lock()
	afterCollect := peak.Above()
	mu.Unlock()
	logs := c.logs(j.ID)
	m := regexp.MustCompile(`sha256=([0-9a-f]{64})`).FindStringSubmatch(logs)
	if m == nil || !strings.Contains(logs, "collected 1 output files") {
		t.Fatalf("log has no digest or does not say the output was collected:\n%s", logs)
	}
	want := m[1]
	h := sha256.New()

	start = time.Now()
	req, err := http.NewRequest(http.MethodGet, c.gwURL+"/v1/jobs/"+j.ID+"/artifacts/big.bin", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	downloaded := time.Since(start)
	stopSampling()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d after %d bytes: %v", resp.StatusCode, n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != bigOutputBytes || got != want {
		t.Fatalf("downloaded %d bytes with SHA-256 %s, want %d with %s", n, got, int64(bigOutputBytes), want)
	}
	t.Logf("2 GiB output: job and collect %v, download %v (%.0f MB/s); heap peak above start %d MiB after the collect, %d MiB in all (bound %d MiB); allocated %d MiB",
		collected.Round(time.Millisecond), downloaded.Round(time.Millisecond), float64(n)/1e6/downloaded.Seconds(),
		afterCollect>>20, peak.Above()>>20, bigOutputHeapBound>>20, peak.Allocated()>>20)
	if peak.Above() > bigOutputHeapBound {
		t.Errorf("heap peak %d MiB above the start, want under %d MiB: something holds the file", peak.Above()>>20, bigOutputHeapBound>>20)
	}
}
