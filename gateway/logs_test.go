package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestLogsByAttempt follows a job through two attempts: the follower gets
// each line (also after the gateway's subscription was cut), a header when
// the second attempt begins, and its stream ends with the job. The ended
// job's log, served from the live stream (no attempt stored one at rest),
// holds both attempts under headers; ?attempt=N serves one.
func TestLogsByAttempt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	j := f.runningJob("w1")

	req, err := http.NewRequest(http.MethodGet, f.ts.URL+"/v1/jobs/"+j.ID+"/logs?follow=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+systemToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("follower got %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("follower never got %q", want)
		}
	}
	appendLine := func(attempt int, s string) {
		t.Helper()
		if err := f.st.AppendLogs(ctx, j.ID, attempt, []store.LogLine{{Stream: store.Stdout, Line: []byte(s)}}); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(1, "one")
	next("one")
	if n := f.plane.Logs.Followers(); n != 1 {
		t.Fatalf("the hub has %d followers, want 1", n)
	}
	// Cut the gateway's subscription: the follower still gets new lines.
	if err := f.st.Redis().Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	appendLine(1, "two")
	next("two")

	// Attempt 1 is lost; attempt 2 runs and succeeds.
	if err := f.st.Requeue(ctx, DefaultWorkspace, j.ID, 1, store.Outcome{Status: api.StatusFailed, Reason: "worker_lost: test"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, n, err := f.st.Reserve(ctx, j.ID, 2, "w2", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.Placed(ctx, DefaultWorkspace, j.ID, 2, "w2"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Start(ctx, DefaultWorkspace, j.ID, 2, "w2", n, time.Now()); err != nil {
		t.Fatal(err)
	}
	appendLine(2, "three")
	next("==> attempt 2 (running) <==")
	next("three")
	// A line of a lost attempt that comes late is not followed, but kept.
	appendLine(1, "late line of the lost attempt")
	appendLine(2, "four")
	next("four")
	code := 0
	if err := f.st.Finish(ctx, DefaultWorkspace, j.ID, 2, store.Outcome{Status: api.StatusSucceeded, ExitCode: &code}, time.Now()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		select {
		case _, open := <-lines:
			return !open
		default:
			return false
		}
	}, "the follow did not end with the job")
	testenv.Eventually(t, 5*time.Second, func() bool { return f.plane.Logs.Followers() == 0 }, "the follower was not let go")

	tests := []struct {
		query    string
		wantCode int
		want     string
	}{
		{query: "", wantCode: 200, want: "==> attempt 1 (failed: worker_lost: test) <==\none\ntwo\nlate line of the lost attempt\n==> attempt 2 (succeeded) <==\nthree\nfour\n"},
		{query: "?attempt=1", wantCode: 200, want: "one\ntwo\nlate line of the lost attempt\n"},
		{query: "?attempt=2", wantCode: 200, want: "three\nfour\n"},
		{query: "?attempt=2&follow=true", wantCode: 200, want: "three\nfour\n"},
		{query: "?attempt=3", wantCode: 404},
		{query: "?attempt=0", wantCode: 400},
		{query: "?attempt=x", wantCode: 400},
	}
	for _, tt := range tests {
		code, body := f.call(http.MethodGet, "/v1/jobs/"+j.ID+"/logs"+tt.query, systemToken, "")
		if code != tt.wantCode {
			t.Errorf("logs%s: %d %s, want %d", tt.query, code, body, tt.wantCode)
			continue
		}
		if code == 200 {
			if diff := cmp.Diff(tt.want, body); diff != "" {
				t.Errorf("logs%s (-want +got):\n%s", tt.query, diff)
			}
		}
	}

	// A job of one attempt reads as it printed, without a header.
	one := f.runningJob("w1")
	if err := f.st.AppendLogs(ctx, one.ID, 1, []store.LogLine{{Line: []byte("a")}, {Line: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	if err := f.st.Finish(ctx, DefaultWorkspace, one.ID, 1, store.Outcome{Status: api.StatusSucceeded, ExitCode: &code}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if code, body := f.call(http.MethodGet, "/v1/jobs/"+one.ID+"/logs", systemToken, ""); code != 200 || body != "a\nb\n" || strings.Contains(body, "==>") {
		t.Fatalf("log of a job of one attempt: %d %q, want \"a\\nb\\n\"", code, body)
	}
}

// TestLogsReadHoldsAPage: GET /logs of a running job whose live log is 48
// lines of 1 MiB holds about one page of it (some 8 MiB) at a time, not the
// whole stream, however the client reads. Not parallel: it measures the
// process's heap, sampled as the body comes in.
func TestLogsReadHoldsAPage(t *testing.T) {
	f := newFixture(t)
	j := f.runningJob("w1")
	const n = 48
	line := []byte(strings.Repeat("x", 1<<20))
	for i := 0; i < n; i += 8 {
		batch := make([]store.LogLine, 8)
		for k := range batch {
			batch[k] = store.LogLine{Stream: store.Stdout, Line: line}
		}
		if err := f.st.AppendLogs(context.Background(), j.ID, 1, batch); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodGet, f.ts.URL+"/v1/jobs/"+j.ID+"/logs", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+systemToken)
	heap := testenv.NewHeapPeak()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 1<<20)
	total := 0
	for {
		k, err := io.ReadFull(resp.Body, buf)
		total += k
		heap.Sample()
		if err != nil {
			break
		}
	}
	if want := n * (len(line) + 1); total != want {
		t.Fatalf("read %d bytes of log, want %d", total, want)
	}
	held := heap.Above()
	t.Logf("serving %d MiB of log held %.1f MiB at most, allocated %.1f MiB", n, float64(held)/(1<<20), float64(heap.Allocated())/(1<<20))
	if held > 24<<20 {
		t.Fatalf("serving a log of %d MiB held %d MiB at once; a page is about 8", n, held>>20)
	}
}
