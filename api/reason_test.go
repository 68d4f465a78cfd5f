package api_test

import (
	"fmt"
	"testing"

	"github.com/jobgate/jobgate/api"
)

func TestReasonString(t *testing.T) {
	tests := []struct {
		name   string
		reason api.Reason
		want   string
	}{
		{name: "an end with a detail", reason: api.Reason{Code: api.ReasonExitCode, Detail: "exited with 3"}, want: "exit_code: exited with 3"},
		{name: "an end without one", reason: api.Reason{Code: api.ReasonCanceled}, want: "canceled"},
		{name: "a wait reads as its detail", reason: api.Reason{Code: api.ReasonWaitingForGPU, Detail: "needs 1 GPU H100; 0 of 2 free on 1 worker"},
			want: "needs 1 GPU H100; 0 of 2 free on 1 worker"},
		{name: "a placement too", reason: api.Reason{Code: api.ReasonPlaced, Detail: "placed on worker w1"}, want: "placed on worker w1"},
		{name: "a run its client ended", reason: api.Reason{Code: api.ReasonEndedByClient, Detail: "ended through the tracking API"},
			want: "ended through the tracking API"},
		{name: "none", reason: api.Reason{}, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.reason.String(); got != tt.want {
				t.Fatalf("%+v.String() = %q, want %q", tt.reason, got, tt.want)
			}
		})
	}
}

func ExampleReason() {
	ended := api.Reason{Code: api.ReasonWorkerLost, Detail: "worker w1 stopped heartbeating"}
	waits := api.Reason{Code: api.ReasonQuota, Detail: "workspace quota: 4 of 4 jobs running"}
	fmt.Println(ended)
	fmt.Println(waits)
	// Output:
	// worker_lost: worker w1 stopped heartbeating
	// workspace quota: 4 of 4 jobs running
}
