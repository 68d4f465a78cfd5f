package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/testenv"
)

// TestScheduleFiresUnderRun: `jobgate gateway` runs the cron loop beside the
// API (runGateway), so a schedule created through the API fires. (It was a
// test of Gateway.Run in gateway/ while the gateway ran its own loops.)
func TestScheduleFiresUnderRun(t *testing.T) {
	c := newCluster(t)
	body := `{"name":"s","cron":"@every 1s","job":{"image":"localhost/jobgate-examples:test","command":["/bin/toolbox","echo","hi"]}}`
	if code := c.do(http.MethodPost, "/v1/schedules", body, nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/schedules: %d", code)
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		var h struct{ History []json.RawMessage }
		return c.do(http.MethodGet, "/v1/schedules/s/history", "", &h) == http.StatusOK && len(h.History) > 0
	}, "the schedule never fired under `jobgate gateway`")
}
