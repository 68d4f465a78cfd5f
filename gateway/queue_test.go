package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/placement"
)

// TestQueueOrderAndReasons: GET /v1/queue lists the waiting jobs high
// priority first, then by age, numbered from 1, each with the reason its
// record gives; ended jobs are not in it.
func TestQueueOrderAndReasons(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// Each job a second younger than the one before, so that age orders
	// them whatever the clock's resolution.
	at := time.Now().Add(-time.Hour)
	submit := func(name, priority string) api.Job {
		at = at.Add(time.Second)
		f.clock(at)
		var j api.Job
		f.mustCall("POST", "/v1/jobs", systemToken,
			`{"image":"localhost/x:1","command":["x"],"name":"`+name+`","priority":"`+priority+`"}`, &j)
		return j
	}
	// Submitted in an order the queue must not keep.
	low := submit("low", "low")
	normal1 := submit("normal-1", "normal")
	high := submit("high", "high")
	normal2 := submit("normal-2", "normal")
	gone := submit("gone", "high")
	f.mustCall("POST", "/v1/jobs/"+gone.ID+"/cancel", systemToken, "", nil)

	// One placement pass over no workers gives every job a wait reason of
	// the scheduler's own.
	s := placement.New(placement.Config{ID: "test", WorkerLostAfter: time.Minute}, nil, f.st.Redis(), f.st,
		asynq.NewClientFromRedisClient(f.st.Redis()), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := s.Pass(ctx); err != nil {
		t.Fatal(err)
	}

	var q api.Queue
	f.mustCall("GET", "/v1/queue", systemToken, "", &q)
	want := []api.Job{high, normal1, normal2, low}
	if q.Total != len(want) || len(q.Pending) != len(want) {
		t.Fatalf("queue has total %d, %d pending; want %d: %+v", q.Total, len(q.Pending), len(want), q.Pending)
	}
	for i, w := range want {
		got := q.Pending[i]
		var rec api.Job
		f.mustCall("GET", "/v1/jobs/"+w.ID, systemToken, "", &rec)
		if got.ID != w.ID || got.Position != i+1 || got.Name != w.Name || got.Workspace != DefaultWorkspace {
			t.Fatalf("queue[%d] = %+v; want %s (%s) at position %d", i, got, w.ID, w.Name, i+1)
		}
		if got.ReasonCode == "" || got.ReasonCode != rec.ReasonCode || got.Reason != rec.Reason {
			t.Fatalf("queue[%d] waits for %q (%s); the job's record says %q (%s)", i, got.ReasonCode, got.Reason, rec.ReasonCode, rec.Reason)
		}
	}
	if q.Pending[0].Priority != api.PriorityHigh || q.Pending[1].Priority != api.PriorityNormal || q.Pending[3].Priority != api.PriorityLow {
		t.Fatalf("priorities %s, %s, %s; want high, normal, low", q.Pending[0].Priority, q.Pending[1].Priority, q.Pending[3].Priority)
	}

	// limit cuts Pending, not Total.
	f.mustCall("GET", "/v1/queue?limit=2", systemToken, "", &q)
	if q.Total != 4 || len(q.Pending) != 2 || q.Pending[1].ID != normal1.ID {
		t.Fatalf("limit=2: total %d, pending %+v; want total 4 and the first two", q.Total, q.Pending)
	}
}

// TestQueueIsWorkspaceScoped: a workspace's token sees only its own
// waiting jobs, numbered among themselves; the system token sees all.
func TestQueueIsWorkspaceScoped(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	readA := f.token("team-a", api.ScopeRead)
	adminA, adminB := f.token("team-a", api.ScopeAdmin), f.token("team-b", api.ScopeAdmin)
	var b1, a1, b2 api.Job
	at := time.Now().Add(-time.Hour)
	for i, s := range []struct {
		token string
		job   *api.Job
	}{{adminB.Secret, &b1}, {adminA.Secret, &a1}, {adminB.Secret, &b2}} {
		f.clock(at.Add(time.Duration(i) * time.Second))
		f.mustCall("POST", "/v1/jobs", s.token, jobBody, s.job)
	}

	var q api.Queue
	f.mustCall("GET", "/v1/queue", readA.Secret, "", &q)
	if q.Total != 1 || len(q.Pending) != 1 || q.Pending[0].ID != a1.ID || q.Pending[0].Position != 1 {
		t.Fatalf("team-a's queue: %+v; want only %s, at position 1", q, a1.ID)
	}
	f.mustCall("GET", "/v1/queue", systemToken, "", &q)
	if q.Total != 3 || q.Pending[0].ID != b1.ID || q.Pending[1].ID != a1.ID || q.Pending[2].ID != b2.ID {
		t.Fatalf("system's queue: %+v; want %s, %s, %s", q, b1.ID, a1.ID, b2.ID)
	}
}

// TestQueueLimitValidation: a limit outside 1..1000 is a 422 that names it.
func TestQueueLimitValidation(t *testing.T) {
	f := newFixture(t)
	for _, bad := range []string{"0", "-1", "1001", "ten", "1.5"} {
		code, body := f.call("GET", "/v1/queue?limit="+bad, systemToken, "")
		var e api.ErrorBody
		_ = json.Unmarshal([]byte(body), &e)
		if code != http.StatusUnprocessableEntity || !strings.Contains(e.Error.Message, "limit") {
			t.Fatalf("limit=%s: %d %s; want 422 naming limit", bad, code, body)
		}
	}
	if code, body := f.call("GET", "/v1/queue?status=queued", systemToken, ""); code != http.StatusBadRequest || !strings.Contains(body, "status") {
		t.Fatalf("unknown parameter: %d %s; want 400 naming it", code, body)
	}
	f.mustCall("GET", "/v1/queue?limit=1000", systemToken, "", nil)
}
