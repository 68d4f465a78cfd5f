package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/queue"
)

func TestNormalizeExec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		req         api.ExecRequest
		wantTimeout int
		wantErr     string
	}{
		{name: "default timeout", req: api.ExecRequest{Command: []string{"ls", "/outputs"}}, wantTimeout: 300},
		{name: "own timeout", req: api.ExecRequest{Command: []string{"ls"}, TimeoutSeconds: 3600}, wantTimeout: 3600},
		{name: "no command", req: api.ExecRequest{}, wantErr: "command must be a non-empty array"},
		{name: "empty program", req: api.ExecRequest{Command: []string{"", "x"}}, wantErr: "command[0] must name the program"},
		{name: "NUL", req: api.ExecRequest{Command: []string{"ls", "a\x00b"}}, wantErr: "command[1] must be valid UTF-8 without NUL"},
		{name: "not UTF-8", req: api.ExecRequest{Command: []string{"ls", "\xff"}}, wantErr: "command[1] must be valid UTF-8"},
		{name: "too many arguments", req: api.ExecRequest{Command: make([]string, job.MaxCommandArgs+1)}, wantErr: "at most 4096"},
		{name: "negative timeout", req: api.ExecRequest{Command: []string{"ls"}, TimeoutSeconds: -1}, wantErr: "timeout_seconds must be between 1 and 3600"},
		{name: "timeout too long", req: api.ExecRequest{Command: []string{"ls"}, TimeoutSeconds: 3601}, wantErr: "timeout_seconds must be between 1 and 3600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "too many arguments" {
				tt.req.Command[0] = "ls"
			}
			err := normalizeExec(&tt.req)
			if tt.wantErr == "" {
				if err != nil || tt.req.TimeoutSeconds != tt.wantTimeout {
					t.Fatalf("normalizeExec = %v, timeout %d; want nil, %d", err, tt.req.TimeoutSeconds, tt.wantTimeout)
				}
				return
			}
			e, ok := err.(*api.Error)
			if !ok || e.Code.Status() != http.StatusUnprocessableEntity || e.Code != api.CodeInvalid || !strings.Contains(e.Message, tt.wantErr) {
				t.Fatalf("normalizeExec = %v, want 422 %s mentioning %q", err, api.CodeInvalid, tt.wantErr)
			}
		})
	}
}

func TestExecLine(t *testing.T) {
	t.Parallel()
	three := 3
	tests := []struct {
		e    queue.ExecEvent
		want api.ExecLine
	}{
		{queue.ExecEvent{Kind: queue.ExecStdout, Data: []byte("héllo\n")}, api.ExecLine{Stream: "stdout", Data: "héllo\n"}},
		{queue.ExecEvent{Kind: queue.ExecStderr, Data: []byte{0xff, 0x00, 'a'}}, api.ExecLine{Stream: "stderr", Data: "/wBh", Encoding: "base64"}},
		{queue.ExecEvent{Kind: queue.ExecExited, ExitCode: 3}, api.ExecLine{ExitCode: &three}},
		{queue.ExecEvent{Kind: queue.ExecFailed, Code: "timeout", Message: "m"}, api.ExecLine{Error: &api.ErrorDetail{Code: "timeout", Message: "m"}}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, execLine(tt.e)); diff != "" {
			t.Errorf("execLine(%+v) (-want +got):\n%s", tt.e, diff)
		}
	}
	if got := execAuditTarget("j1", []string{strings.Repeat("é", 2*maxAuditCommand)}); len(got) > maxAuditCommand+10 || !strings.HasSuffix(got, "...") {
		t.Errorf("audit target of a long command: %d bytes, want it cut", len(got))
	}
}

// runningJob submits a job and marks it running on worker, as the scheduler
// and the worker would.
func (f *fixture) runningJob(worker string) api.Job {
	f.t.Helper()
	ctx := context.Background()
	var j api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &j)
	_, n, err := f.st.Reserve(ctx, j.ID, 1, worker, "")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Placed(ctx, DefaultWorkspace, j.ID, 1, worker); err != nil {
		f.t.Fatal(err)
	}
	if err := f.st.Start(ctx, DefaultWorkspace, j.ID, 1, worker, n, time.Now()); err != nil {
		f.t.Fatal(err)
	}
	return j
}

// fakeWorker answers the exec requests sent to worker id with the events
// answer returns (numbered from 1 unless numbered), and reports every
// request, cancels included, on the returned channel.
func (f *fixture) fakeWorker(id string, answer func(queue.ExecRequest) []queue.ExecEvent) <-chan queue.ExecRequest {
	f.t.Helper()
	rdb := f.st.Redis()
	sub := queue.SubscribeExec(context.Background(), rdb, id)
	if _, err := sub.Receive(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { sub.Close() })
	seen := make(chan queue.ExecRequest, 1000)
	go func() {
		for m := range sub.Channel() {
			r, err := queue.ParseExecRequest([]byte(m.Payload))
			if err != nil {
				f.t.Errorf("bad exec request %q: %v", m.Payload, err)
				continue
			}
			seen <- r
			if r.Cancel || answer == nil {
				continue
			}
			events := answer(r)
			for i := range events {
				if events[i].Seq == 0 {
					events[i].Seq = int64(i + 1)
				}
			}
			if err := queue.AppendExec(context.Background(), rdb, r.Session, events...); err != nil {
				f.t.Errorf("append exec events: %v", err)
			}
		}
	}()
	return seen
}

// execCall posts an exec request and returns the status, the Content-Type
// and the body's lines.
func (f *fixture) execCall(id, token, body string) (int, string, []string) {
	f.t.Helper()
	req, _ := http.NewRequest("POST", f.ts.URL+"/v1/jobs/"+id+"/exec", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), lines
}

// nextRequest returns the next request the fake worker got that is not a
// cancel.
func nextRequest(t *testing.T, seen <-chan queue.ExecRequest) queue.ExecRequest {
	t.Helper()
	for {
		select {
		case r := <-seen:
			if !r.Cancel {
				return r
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the worker got no request")
		}
	}
}

// wantCancel waits for the gateway to send session's cancel to the worker.
func wantCancel(t *testing.T, seen <-chan queue.ExecRequest, session string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-seen:
			if r.Cancel && r.Session == session {
				return
			}
		case <-deadline:
			t.Fatalf("the worker got no cancel of session %s", session)
		}
	}
}

// TestExecRelaysTheWorker drives the gateway's side of exec against a fake
// worker speaking the queue contract: how its events become NDJSON lines or
// HTTP errors, and when the gateway tells the worker to stop.
func TestExecRelaysTheWorker(t *testing.T) {
	f := newFixture(t)
	const body = `{"command":["toolbox","ls","/outputs"]}`
	seen := f.fakeWorker("fake", func(r queue.ExecRequest) []queue.ExecEvent {
		switch r.Command[0] {
		case "refuse":
			return []queue.ExecEvent{{Kind: queue.ExecFailed, Code: r.Command[1], Message: "no"}}
		case "gap":
			return []queue.ExecEvent{{Kind: queue.ExecStarted}, {Kind: queue.ExecStdout, Data: []byte("a"), Seq: 3}}
		case "silent":
			return nil
		}
		return []queue.ExecEvent{
			{Kind: queue.ExecStarted},
			{Kind: queue.ExecStdout, Data: []byte("model.bin 12\n")},
			{Kind: queue.ExecStderr, Data: []byte{0xff, 'x'}},
			{Kind: queue.ExecExited, ExitCode: 3},
		}
	})
	j := f.runningJob("fake")

	t.Run("relayed as NDJSON", func(t *testing.T) {
		code, ctype, lines := f.execCall(j.ID, systemToken, body)
		want := []string{`{"stream":"stdout","data":"model.bin 12\n"}`, `{"stream":"stderr","data":"/3g=","encoding":"base64"}`, `{"exit_code":3}`}
		if code != http.StatusOK || ctype != "application/x-ndjson" || !cmp.Equal(lines, want) {
			t.Fatalf("got %d %s %q\nwant 200 application/x-ndjson %q", code, ctype, lines, want)
		}
		last := nextRequest(t, seen)
		if last.JobID != j.ID || last.Attempt != 1 || last.TimeoutSeconds != 300 || !cmp.Equal(last.Command, []string{"toolbox", "ls", "/outputs"}) {
			t.Fatalf("worker got %+v", last)
		}
		// A session the worker ended needs no cancel, and leaves nothing.
		if n := f.st.Redis().Exists(context.Background(), queue.ExecStreamKey(last.Session), queue.ExecLeaseKey(last.Session)).Val(); n != 0 {
			t.Errorf("%d keys of the session left in Redis", n)
		}
		var audit struct{ Entries []api.AuditEntry }
		f.mustCall("GET", "/v1/audit", systemToken, "", &audit)
		if e := audit.Entries[0]; e.Action != "job.exec" || e.Target != j.ID+` ["toolbox","ls","/outputs"]` {
			t.Fatalf("last audit entry %+v, want job.exec with the command", e)
		}
	})
	t.Run("refusals become HTTP errors", func(t *testing.T) {
		for code, status := range map[string]int{queue.ExecCodeNotRunning: 409, queue.ExecCodeUnsupported: 409, queue.ExecCodeBusy: 429, queue.ExecCodeStart: 422} {
			got, _, lines := f.execCall(j.ID, systemToken, `{"command":["refuse","`+code+`"]}`)
			var e api.ErrorBody
			if got != status || len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &e) != nil || string(e.Error.Code) != code {
				t.Errorf("worker refused with %s: %d %q, want %d with that code", code, got, lines, status)
			}
			nextRequest(t, seen)
		}
	})
	t.Run("lost output ends the session", func(t *testing.T) {
		code, _, lines := f.execCall(j.ID, systemToken, `{"command":["gap"]}`)
		if code != http.StatusOK || len(lines) != 1 || !strings.Contains(lines[0], `"code":"`+string(api.CodeOutputLost)+`"`) {
			t.Fatalf("got %d %q, want one error line %s", code, lines, api.CodeOutputLost)
		}
		wantCancel(t, seen, nextRequest(t, seen).Session)
	})
	t.Run("a worker that never answers", func(t *testing.T) {
		code, _, lines := f.execCall(j.ID, systemToken, `{"command":["silent"]}`)
		if code != http.StatusGatewayTimeout || len(lines) != 1 || !strings.Contains(lines[0], string(api.CodeWorkerTimeout)) {
			t.Fatalf("got %d %q, want 504 %s", code, lines, api.CodeWorkerTimeout)
		}
		wantCancel(t, seen, nextRequest(t, seen).Session)
	})
	t.Run("a worker that is not listening", func(t *testing.T) {
		ghost := f.runningJob("ghost")
		code, _, lines := f.execCall(ghost.ID, systemToken, body)
		if code != http.StatusServiceUnavailable || len(lines) != 1 || !strings.Contains(lines[0], string(api.CodeWorkerUnavailable)) {
			t.Fatalf("got %d %q, want 503 %s", code, lines, api.CodeWorkerUnavailable)
		}
	})
	t.Run("a job that is not running", func(t *testing.T) {
		var queued api.Job
		f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &queued)
		code, _, lines := f.execCall(queued.ID, systemToken, body)
		if code != http.StatusConflict || len(lines) != 1 || !strings.Contains(lines[0], "is queued; exec needs a running job") {
			t.Fatalf("got %d %q, want 409 saying the job is queued", code, lines)
		}
	})
	t.Run("a tracked run", func(t *testing.T) {
		run := f.mlflowOK("POST", "runs/create", systemToken, `{"experiment_id": "0", "run_name": "notebook"}`)["run"].(map[string]any)
		id := run["info"].(map[string]any)["run_id"].(string)
		code, _, lines := f.execCall(id, systemToken, body)
		if code != http.StatusConflict || len(lines) != 1 || !strings.Contains(lines[0], queue.ExecCodeUnsupported) {
			t.Fatalf("got %d %q, want 409 %s: nothing runs it", code, lines, queue.ExecCodeUnsupported)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		for b, status := range map[string]int{`{`: 400, `{"command":[]}`: 422, `{"command":["ls"],"tty":true}`: 422, `{"command":["ls"],"timeout_seconds":7200}`: 422} {
			if code, _, lines := f.execCall(j.ID, systemToken, b); code != status {
				t.Errorf("body %s: %d %q, want %d", b, code, lines, status)
			}
		}
	})
}
