package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/worker"
)

// TestEndReasonsHaveCodes: how an attempt ended is a code (the record's
// reason_code, and its attempt history's) beside the reason people read,
// which holds what the worker wrote and no error text of Go or of the
// executor (that is in the job's log).
func TestEndReasonsHaveCodes(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := processWorker(t, worker.Config{ID: "codes", Slots: 2}, rdb, st)
	defer runWorker(t, ctx, w, st)()

	tests := []struct {
		name       string
		spec       api.JobSpec
		wantCode   string
		wantReason string
		// wantHistory is the reason_code of each attempt in the history.
		wantHistory []string
	}{
		{name: "non-zero exit", spec: api.JobSpec{Command: []string{"/bin/sh", "-c", "exit 3"}},
			wantCode: api.ReasonExitCode, wantReason: "exit_code: exited with 3", wantHistory: []string{api.ReasonExitCode}},
		{name: "a command that cannot start", spec: api.JobSpec{Command: []string{"/bin/no-such-program"}},
			wantCode: api.ReasonStartFailed, wantReason: "start_failed: /bin/no-such-program could not be started (the job's log says why)",
			wantHistory: []string{api.ReasonStartFailed}},
		{name: "a secret without the worker's key", spec: api.JobSpec{Command: []string{"/bin/true"}, Secrets: map[string]string{"TOKEN": "tok"}},
			wantCode: api.ReasonSecretUnavailable, wantReason: "secret_unavailable: worker codes has no secrets key (start it with --secrets-key-file)",
			wantHistory: []string{api.ReasonSecretUnavailable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Mode, tt.spec.TimeoutSeconds = api.ModeProcess, 30
			j := place(t, ctx, rdb, st, tt.spec, "codes")
			var got *api.Job
			testenv.Eventually(t, 30*time.Second, func() bool {
				got, _ = st.GetJobByID(ctx, j.ID)
				return got != nil && got.Status.Terminal()
			}, "job did not end")
			b, _ := json.Marshal(got)
			var rec map[string]any
			_ = json.Unmarshal(b, &rec)
			if got.Reason != tt.wantReason || rec["reason_code"] != tt.wantCode {
				t.Errorf("reason %q, reason_code %v; want %q, %q", got.Reason, rec["reason_code"], tt.wantReason, tt.wantCode)
			}
			hist, _ := st.Attempts(ctx, j.ID)
			b, _ = json.Marshal(hist)
			var recs []map[string]any
			_ = json.Unmarshal(b, &recs)
			var codes []string
			for _, r := range recs {
				c, _ := r["reason_code"].(string)
				codes = append(codes, c)
			}
			if strings.Join(codes, ",") != strings.Join(tt.wantHistory, ",") {
				t.Errorf("attempt history reason codes %q, want %q", codes, tt.wantHistory)
			}
		})
	}
}
