package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

func TestExecCLI(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		last api.ExecRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.ExecRequest
		if r.Method != http.MethodPost || r.URL.Path != "/v1/jobs/job-01/exec" || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		last = req
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-ndjson")
		switch req.Command[0] {
		case "fail":
			io.WriteString(w, `{"stream":"stdout","data":"partial"}`+"\n"+`{"error":{"code":"timeout","message":"the command ran past its timeout of 1s and was stopped"}}`+"\n")
		default:
			io.WriteString(w, `{"stream":"stdout","data":"out\n"}`+"\n"+`{"stream":"stderr","data":"err\n"}`+"\n"+`{"exit_code":`+req.Command[len(req.Command)-1]+`}`+"\n")
		}
	}))
	t.Cleanup(srv.Close)
	env := envFor(srv.URL)

	tests := []struct {
		name       string
		args       []string
		wantReq    *api.ExecRequest
		wantStdout string
		wantStderr string
		wantExit   int    // 0: no error
		wantErr    string // an error without an exit code
	}{
		{name: "exit 0", args: []string{"exec", "job-01", "--", "ls", "-l", "0"},
			wantReq: &api.ExecRequest{Command: []string{"ls", "-l", "0"}}, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "the command's exit code", args: []string{"exec", "job-01", "--", "ls", "7"},
			wantReq: &api.ExecRequest{Command: []string{"ls", "7"}}, wantStdout: "out\n", wantStderr: "err\n", wantExit: 7},
		{name: "flags before --", args: []string{"exec", "--timeout", "90s", "job-01", "--", "ls", "--timeout", "0"},
			wantReq: &api.ExecRequest{Command: []string{"ls", "--timeout", "0"}, TimeoutSeconds: 90}, wantStdout: "out\n", wantStderr: "err\n"},
		{name: "session failed", args: []string{"exec", "job-01", "--", "fail"}, wantStdout: "partial",
			wantErr: "exec: timeout: the command ran past its timeout of 1s and was stopped"},
		{name: "no --", args: []string{"exec", "job-01", "ls"}, wantErr: "exec: usage: jobgate exec ID -- COMMAND"},
		{name: "two IDs", args: []string{"exec", "job-01", "job-02", "--", "ls"}, wantErr: "exec: usage: jobgate exec ID -- COMMAND"},
		{name: "no command", args: []string{"exec", "job-01", "--"}, wantErr: "requires at least 2 arg(s)"},
		{name: "bad timeout", args: []string{"exec", "--timeout", "1500ms", "job-01", "--", "ls"}, wantErr: "--timeout 1.5s: want whole seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			last = api.ExecRequest{}
			mu.Unlock()
			res := runCLI(t, env, "", tt.args...)
			var ee interface{ ExitCode() int }
			switch {
			case tt.wantErr != "":
				if res.err == nil || !strings.Contains(res.err.Error(), tt.wantErr) || errors.As(res.err, &ee) {
					t.Fatalf("error = %v, want one saying %q", res.err, tt.wantErr)
				}
			case tt.wantExit != 0:
				if !errors.As(res.err, &ee) || ee.ExitCode() != tt.wantExit {
					t.Fatalf("error = %v, want exit code %d", res.err, tt.wantExit)
				}
			case res.err != nil:
				t.Fatalf("error = %v", res.err)
			}
			if res.stdout != tt.wantStdout || (tt.wantStderr != "" && res.stderr != tt.wantStderr) {
				t.Errorf("stdout %q, stderr %q; want %q, %q", res.stdout, res.stderr, tt.wantStdout, tt.wantStderr)
			}
			if tt.wantReq != nil {
				mu.Lock()
				defer mu.Unlock()
				if diff := cmp.Diff(*tt.wantReq, last); diff != "" {
					t.Errorf("request (-want +got):\n%s", diff)
				}
			}
		})
	}
}
