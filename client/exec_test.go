package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

func TestExec(t *testing.T) {
	t.Parallel()
	const ndjson = `{"stream":"stdout","data":"hello "}
{"stream":"stderr","data":"oops\n"}
{"stream":"stdout","data":"/w==","encoding":"base64"}
{"exit_code":3}
`
	tests := []struct {
		name     string
		body     string
		status   int
		wantCode int
		wantOut  string
		wantErr  string
		checkErr func(error) bool
	}{
		{name: "output and exit code", body: ndjson, wantCode: 3, wantOut: "hello \xff", wantErr: "oops\n"},
		{name: "error line", body: `{"stream":"stdout","data":"a"}` + "\n" + `{"error":{"code":"timeout","message":"ran past 1s"}}` + "\n",
			wantCode: -1, wantOut: "a", checkErr: func(err error) bool {
				var ee *client.ExecError
				return errors.As(err, &ee) && ee.Code == "timeout" && ee.Message == "ran past 1s"
			}},
		{name: "cut short", body: `{"stream":"stdout","data":"a"}` + "\n", wantCode: -1, wantOut: "a",
			checkErr: func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{name: "refused", status: http.StatusConflict, body: `{"error":{"code":"job_not_running","message":"job j1 is queued"}}`, wantCode: -1,
			checkErr: func(err error) bool {
				var ae *client.Error
				return errors.As(err, &ae) && ae.StatusCode == http.StatusConflict && ae.Code == "job_not_running"
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				var req api.ExecRequest
				if r.Method != http.MethodPost || r.URL.Path != "/v1/jobs/j1/exec" || json.NewDecoder(r.Body).Decode(&req) != nil ||
					!cmp.Equal(req, api.ExecRequest{Command: []string{"ls", "-l"}, TimeoutSeconds: 9}) {
					t.Errorf("got %s %s %+v", r.Method, r.URL.Path, req)
				}
				if tt.status != 0 {
					writeJSON(t, w, tt.status, json.RawMessage(tt.body))
					return
				}
				w.Header().Set("Content-Type", "application/x-ndjson")
				io.WriteString(w, tt.body)
			})
			var stdout, stderr bytes.Buffer
			code, err := c.ExecWith(context.Background(), "j1", api.ExecRequest{Command: []string{"ls", "-l"}, TimeoutSeconds: 9}, &stdout, &stderr)
			if code != tt.wantCode || stdout.String() != tt.wantOut || stderr.String() != tt.wantErr {
				t.Errorf("ExecWith = %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout.String(), stderr.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
			if (tt.checkErr == nil) != (err == nil) || (tt.checkErr != nil && !tt.checkErr(err)) {
				t.Errorf("error = %v", err)
			}
		})
	}
}
