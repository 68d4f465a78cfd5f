package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestBatchTraceInJaeger is issue 13's "each batch is one trace": a batch
// of 210 rows posted with a client's traceparent, scored by a `jobgate
// worker` process, every process exporting to a real Jaeger. The trace
// holds the gateway's span of the POST (the client's span its parent), the
// worker's "batch" span under it, one "batch chunk" span per chunk of 100
// rows under that, a client span per row under its chunk's, and the
// router's server span of each row under its client span. The same post
// again under its Idempotency-Key, with a traceparent of its own, is the
// same batch (a retry is a request of its own: its trace is not the
// batch's spec).
func TestBatchTraceInJaeger(t *testing.T) {
	jaeger := tracedToJaeger(t)
	c := newCluster(t)
	c.startScoringProcess()
	c.startWorker("svc", "--slots", "1") // the replica fills it: the batch goes to the process
	c.deployIris()
	c.startWorkerProcess("traced", t.TempDir(), t.TempDir(), "--scoring-url", c.scoringURL, "--gateway-url", c.gwURL)

	const (
		rows        = 210
		traceID     = "7c3e9a1f5b2d4c6e8a0b1c2d3e4f5a6b"
		clientSpan  = "1a2b3c4d5e6f7081"
		retryTrace  = "0d1c2b3a49586776a5b4c3d2e1f00f1e"
		idempotency = "trace-batch-1"
	)
	var body strings.Builder
	for i := range rows {
		body.WriteString(batchRow(i) + "\n")
	}
	post := func(traceparent string) api.BatchAccepted {
		t.Helper()
		code, _, b := c.postBatch("iris", "?max_concurrency=4", "application/x-ndjson", strings.NewReader(body.String()),
			map[string]string{"Traceparent": traceparent, "Idempotency-Key": idempotency})
		var acc api.BatchAccepted
		if code != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.ID == "" {
			t.Fatalf("submit: %d %s, want 202", code, b)
		}
		return acc
	}
	acc := post("00-" + traceID + "-" + clientSpan + "-01")
	got := c.waitBatch(acc.ID, 120*time.Second, "succeeded", func(b api.Batch) bool {
		if b.Status == api.BatchFailed || b.Status == api.BatchCanceled {
			t.Fatalf("batch ended %+v", b)
		}
		return b.Status == api.BatchSucceeded
	})
	if got.Done != rows || got.Failed != 0 {
		t.Fatalf("batch %+v, want %d rows done", got, rows)
	}
	if again := post("00-" + retryTrace + "-2b3c4d5e6f708192-01"); again.ID != acc.ID {
		t.Fatalf("the same post under its Idempotency-Key with another traceparent made batch %s, want %s", again.ID, acc.ID)
	}

	// The spans, by kind; complete once every row's router span is in.
	var tr *testenv.JaegerTrace
	var gw, batch *testenv.JaegerSpan
	var chunks, requests, routed map[string]*testenv.JaegerSpan
	read := func() bool {
		var err error
		if tr, err = jaeger.Trace(traceID); err != nil {
			return false
		}
		gw, batch = nil, nil
		chunks, requests, routed = map[string]*testenv.JaegerSpan{}, map[string]*testenv.JaegerSpan{}, map[string]*testenv.JaegerSpan{}
		for i := range tr.Spans {
			s := &tr.Spans[i]
			switch svc, kind := tr.Service(*s), s.Tag("span.kind"); {
			case svc == "jobgate-gateway" && s.OperationName == "POST /v1/deployments/:name/batch":
				gw = s
			case svc == "jobgate-worker" && s.OperationName == "batch":
				batch = s
			case svc == "jobgate-worker" && s.OperationName == "batch chunk":
				chunks[s.SpanID] = s
			case svc == "jobgate-worker" && kind == "client":
				requests[s.SpanID] = s
			}
		}
		for i := range tr.Spans {
			if s := &tr.Spans[i]; tr.Service(*s) == "jobgate-scoring" && s.Tag("span.kind") == "server" && requests[s.Parent()] != nil {
				routed[s.Parent()] = s
			}
		}
		return gw != nil && batch != nil && len(chunks) == 3 && len(requests) >= rows && len(routed) == len(requests)
	}
	testenv.Eventually(t, 30*time.Second, read, "trace %s: gateway span %v, batch span %v, %v chunk spans (want 3), %v request spans (want %d), %v of them with the router's span under them; held: %s",
		traceID, lazy(func() string { return fmt.Sprint(gw != nil) }), lazy(func() string { return fmt.Sprint(batch != nil) }),
		lazy(func() string { return fmt.Sprint(len(chunks)) }), lazy(func() string { return fmt.Sprint(len(requests)) }), rows,
		lazy(func() string { return fmt.Sprint(len(routed)) }), lazy(func() string {
			if tr == nil {
				return "no trace"
			}
			held := map[string]int{}
			for _, s := range tr.Spans {
				held[tr.Service(s)+": "+s.OperationName]++
			}
			return fmt.Sprint(held)
		}))

	if gw.Parent() != clientSpan {
		t.Errorf("gateway span's parent %s, want the client's %s", gw.Parent(), clientSpan)
	}
	if batch.Parent() != gw.SpanID || batch.Tag("batch.id") != acc.ID || batch.Tag("batch.total") != fmt.Sprint(rows) {
		t.Errorf("batch span: parent %s (want the gateway's %s), batch.id %q (want %s), batch.total %q",
			batch.Parent(), gw.SpanID, batch.Tag("batch.id"), acc.ID, batch.Tag("batch.total"))
	}
	seen := map[string]bool{}
	for _, ch := range chunks {
		seen[ch.Tag("batch.chunk")+"/"+ch.Tag("batch.rows")] = true
		if ch.Parent() != batch.SpanID {
			t.Errorf("chunk span %s (chunk %s): parent %s, want the batch's %s", ch.SpanID, ch.Tag("batch.chunk"), ch.Parent(), batch.SpanID)
		}
	}
	if !seen["0/100"] || !seen["1/100"] || !seen["2/10"] {
		t.Errorf("chunk spans %v, want chunks 0, 1 of 100 rows and 2 of 10", seen)
	}
	perChunk := map[string]int{}
	for id, rq := range requests {
		if chunks[rq.Parent()] == nil {
			t.Fatalf("request span %s: parent %s is no chunk span", id, rq.Parent())
		}
		perChunk[chunks[rq.Parent()].Tag("batch.chunk")]++
	}
	if perChunk["0"] < 100 || perChunk["1"] < 100 || perChunk["2"] < 10 {
		t.Errorf("requests per chunk %v, want each row's under its chunk", perChunk)
	}
	if tr2, err := jaeger.Trace(retryTrace); err == nil {
		for _, s := range tr2.Spans {
			if tr2.Service(s) == "jobgate-worker" {
				t.Errorf("the replayed post's trace holds a worker span %q: the batch's trace is the first post's", s.OperationName)
			}
		}
	}
}
