package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestArtifactsOnS3: a gateway and a worker sharing no folder, only a real
// SeaweedFS bucket (--artifacts-url s3://...). A job's log at rest and its
// output land in the bucket; the gateway serves the log, the output whole
// and as a Range; a model version registered from the output is copied in
// the bucket and downloads; a batch-score job (the worker fetching the
// model from the bucket, its per-file results checkpointed there) leaves
// its predictions there; and the gateway's and worker's folder stays empty.
func TestArtifactsOnS3(t *testing.T) {
	c := newS3Cluster(t)
	c.startWorker("w1", "--slots", "4")
	ctx := context.Background()
	bucket := c.s3.Client(t)
	object := func(key string) string { return c.s3.Prefix + "/" + key }

	j := c.waitEnded(c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/sh", "-c", `set -e
mkdir "$JOBGATE_OUTPUTS/data"
seq 1 100000 > "$JOBGATE_OUTPUTS/data/seq.txt"
echo "wrote the output"`}}).ID)
	if j.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)\n%s", j.Status, j.Reason, c.logs(j.ID))
	}
	var seq strings.Builder
	for i := 1; i <= 100000; i++ {
		seq.WriteString(strconv.Itoa(i) + "\n")
	}
	want := seq.String()
	wantSum := sha256.Sum256([]byte(want))

	// The log at rest is in the bucket, and the gateway reads it there (an
	// ended attempt's log is read from the store first).
	testenv.Eventually(t, 10*time.Second, func() bool {
		_, err := bucket.StatObject(ctx, c.s3.Bucket, object(artifact.LogKey(j.ID, 1)), minio.StatObjectOptions{})
		return err == nil
	}, "no log at rest in the bucket")
	if logs := c.logs(j.ID); !strings.Contains(logs, "wrote the output\n") {
		t.Fatalf("log = %q", logs)
	}

	// The output: in the bucket with its digest, served whole and in part.
	st, err := bucket.StatObject(ctx, c.s3.Bucket, object(artifact.OutputPrefix(j.ID)+"data/seq.txt"), minio.StatObjectOptions{})
	if err != nil || st.Size != int64(len(want)) || st.UserMetadata["Jobgate-Sha256"] != hex.EncodeToString(wantSum[:]) {
		t.Fatalf("output object: %+v, %v; want %d bytes with their SHA-256", st, err, len(want))
	}
	if code, _, body := c.rawGet("/v1/jobs/"+j.ID+"/artifacts/data/seq.txt", nil); code != http.StatusOK || body != want {
		t.Fatalf("download: %d, %d bytes; want 200 with %d", code, len(body), len(want))
	}
	code, h, body := c.rawGet("/v1/jobs/"+j.ID+"/artifacts/data/seq.txt", http.Header{"Range": {"bytes=1000-1999"}})
	if code != http.StatusPartialContent || body != want[1000:2000] || h.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(want)) {
		t.Fatalf("range: %d %q (%s), want 206 with bytes 1000-1999", code, body[:min(len(body), 40)], h.Get("Content-Range"))
	}

	// A model version from the output: copied in the bucket, downloaded.
	mv, err := c.api.RegisterModel(ctx, "seq", j.ID, "data/seq.txt")
	if err != nil || mv.SHA256 != hex.EncodeToString(wantSum[:]) || mv.Size != int64(len(want)) {
		t.Fatalf("register: %+v, %v", mv, err)
	}
	var copied []string
	for o := range bucket.ListObjects(ctx, c.s3.Bucket, minio.ListObjectsOptions{Prefix: object("models/"), Recursive: true}) {
		copied = append(copied, o.Key)
	}
	if len(copied) != 1 || !strings.HasSuffix(copied[0], "/seq/1/seq.txt") {
		t.Fatalf("the model's copy in the bucket: %q, want one object .../seq/1/seq.txt", copied)
	}
	if code, _, body := c.rawGet("/v1/models/seq/versions/1/download", nil); code != http.StatusOK || body != want {
		t.Fatalf("model download: %d, %d bytes; want 200 with %d", code, len(body), len(want))
	}

	// A batch-score job: the worker fetches iris:1 from the bucket, scores
	// a datastore's files and leaves predictions.jsonl there.
	c.registerIris()
	files := []scoreFile{{"a.csv", 40}, {"more/b.csv", 25}}
	c.batchScoreData(files...)
	bj, _ := c.submitBatchScore(fmt.Sprintf(`{"kind": "batch-score", "image": %q, "command": ["/bin/modelserver"],
		"inputs": {"data": {"datastore": "scores"}},
		"batch_score": {"model": "iris:1", "instance_count": 1, "mini_batch_size": 10}}`, testenv.ExampleImage), "")
	done := c.waitFor(bj.ID, 120*time.Second, "ended", func(j *api.Job) bool { return j.Status.Terminal() })
	if done.Status != api.StatusSucceeded {
		t.Fatalf("batch-score job %s (%s)\n%s", done.Status, done.Reason, c.logs(bj.ID))
	}
	if err := checkPredictions(c.predictions(bj.ID), files); err != nil {
		t.Fatalf("%v\n%s", err, c.logs(bj.ID))
	}
	if _, err := bucket.StatObject(ctx, c.s3.Bucket, object(artifact.OutputPrefix(bj.ID)+"predictions.jsonl"), minio.StatObjectOptions{}); err != nil {
		t.Fatalf("predictions.jsonl in the bucket: %v", err)
	}

	// Nothing went to a folder.
	if entries, err := os.ReadDir(c.artifacts); err != nil || len(entries) != 0 {
		t.Errorf("the artifacts folder holds %d entries (%v), want none: the store is the bucket", len(entries), err)
	}
}

// TestBatchOnS3: an HTTP batch on the S3 store: the gateway streams the
// uploaded rows into the bucket, the worker reads them there and writes
// its answered chunks there, and the gateway serves the results from them;
// the deployment's replica fetched its model from the bucket.
func TestBatchOnS3(t *testing.T) {
	c := newS3Cluster(t)
	c.startScoringProcess()
	c.startWorker("w1", "--slots", "8", "--scoring-url", c.scoringURL)
	c.deployIris()
	const rows = 200
	var body strings.Builder
	for i := range rows {
		body.WriteString(batchRow(i) + "\n")
	}
	code, _, b := c.postBatch("iris", "?max_concurrency=2", "application/x-ndjson", strings.NewReader(body.String()), nil)
	var acc api.BatchAccepted
	if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.ID == "" {
		t.Fatalf("submit: %d %s, want 202", code, b)
	}
	final := c.waitBatch(acc.ID, 120*time.Second, "ended", func(bt api.Batch) bool {
		return bt.Status == api.BatchSucceeded || bt.Status == api.BatchFailed || bt.FinishedAt != nil
	})
	if final.Status != api.BatchSucceeded || final.Done != rows {
		t.Fatalf("batch ended %+v, want %d rows done", final, rows)
	}
	lines := c.batchResults(acc.ID)
	if len(lines) != rows {
		t.Fatalf("results: %d lines, want %d", len(lines), rows)
	}
	if err := checkAnswers(lines, nil); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for o := range c.s3.Client(t).ListObjects(context.Background(), c.s3.Bucket, minio.ListObjectsOptions{Prefix: c.s3.Prefix + "/", Recursive: true}) {
		keys = append(keys, strings.TrimPrefix(o.Key, c.s3.Prefix+"/"))
	}
	var input, chunks bool
	for _, k := range keys {
		input = input || strings.HasPrefix(k, "batches/inputs/")
		chunks = chunks || strings.HasPrefix(k, "batches/"+acc.ID+"/results/")
	}
	if !input || !chunks {
		t.Errorf("bucket keys %q: want the batch's rows (batches/inputs/...) and its results (batches/%s/results/...)", keys, acc.ID)
	}
	if entries, err := os.ReadDir(c.artifacts); err != nil || len(entries) != 0 {
		t.Errorf("the artifacts folder holds %d entries (%v), want none", len(entries), err)
	}
}
