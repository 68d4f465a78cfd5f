package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// errGatewayDead is what a dying gateway's Redis commands get.
var errGatewayDead = errors.New("the gateway died")

// dieAfterJob is a go-redis hook that lets a client's commands through until
// one stores a job (an HSET of a job's key), and fails every command after
// it: to Redis, the gateway using the client died just after it made a job.
type dieAfterJob struct{ dead atomic.Bool }

var _ redis.Hook = (*dieAfterJob)(nil)

func (h *dieAfterJob) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *dieAfterJob) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.dead.Load() {
			cmd.SetErr(errGatewayDead)
			return errGatewayDead
		}
		return next(ctx, cmd)
	}
}

func (h *dieAfterJob) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.dead.Load() {
			for _, c := range cmds {
				c.SetErr(errGatewayDead)
			}
			return errGatewayDead
		}
		err := next(ctx, cmds)
		for _, c := range cmds {
			if args := c.Args(); len(args) > 1 && strings.EqualFold(fmt.Sprint(args[0]), "hset") && strings.HasPrefix(fmt.Sprint(args[1]), "{jobgate}:job:") {
				h.dead.Store(true)
			}
		}
		return err
	}
}

// dyingGateway starts another gateway on f's Redis, as secondGateway does,
// whose Redis client dies after it stored a job (dieAfterJob).
func (f *fixture) dyingGateway() *httptest.Server {
	f.t.Helper()
	rdb := testenv.NewClientLike(f.t, f.st.Redis())
	rdb.AddHook(&dieAfterJob{})
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		f.t.Fatal(err)
	}
	g, _ := newGateway(f.t, Config{AdminToken: systemToken}, control.Config{}, rdb, store.New(rdb, store.Config{}), box, nil)
	ts := httptest.NewServer(checked(f.t, g))
	f.t.Cleanup(ts.Close)
	return ts
}

// lapse deletes the keys matching pattern whose value starts with claim,
// as Redis expires what a dead gateway left unfinished, and returns how
// many it deleted.
func (f *fixture) lapse(pattern, claim string) int {
	f.t.Helper()
	ctx := context.Background()
	rc := f.st.Redis()
	keys := testenv.RedisKeys(f.t, rc, pattern)
	n := 0
	for _, k := range keys {
		if v, err := rc.Get(ctx, k).Result(); err == nil && strings.HasPrefix(v, claim) {
			rc.Del(ctx, k)
			n++
		}
	}
	return n
}

// TestTriggerDeliveryGatewayDiesAfterTheJob: a gateway dies (to Redis) right
// after it stored a delivery's job. Its claims on the delivery id and the
// body must already name the job: a redelivery once unfinished claims have
// lapsed, or the body replayed under a new id, gets that job back, and no
// second job is made.
func TestTriggerDeliveryGatewayDiesAfterTheJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	const secret = "0123456789abcdef-github-secret"
	tv := f.createTrigger(admin.Secret, `{"name":"crash","provider":"github","secret":"`+secret+`",
		"job":{"image":"localhost/x:1","command":["x","{{ .payload.after }}"]}}`)

	ts := f.dyingGateway()

	body := []byte(`{"ref":"refs/heads/main","after":"abc123"}`)
	code, answer := f.deliver(ts.URL, tv.HookURL, githubHeaders(secret, "push", "d-1", body), body)
	if code != http.StatusAccepted || f.jobsIn("team-a") != 1 {
		t.Fatalf("delivery to the dying gateway: %d %s, %d jobs; want 202 and one job", code, answer, f.jobsIn("team-a"))
	}
	jobs, _, err := f.st.ListJobs(context.Background(), "team-a", store.ListFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	first := jobs[0].ID

	// The gateway is gone: what it left unfinished lapses, as Redis would
	// expire it after deliveryClaimHold.
	t.Logf("claims left unfinished by the dead gateway: %d", f.lapse("{jobgate}:trigger:"+tv.ID+":*", "claim:"))

	for _, d := range []string{"d-1", "d-2"} {
		code, answer := f.deliver("", tv.HookURL, githubHeaders(secret, "push", d, body), body)
		var res hookAnswer
		_ = json.Unmarshal([]byte(answer), &res)
		if code != http.StatusOK || res.JobID != first || !strings.Contains(answer, `"duplicate":true`) {
			t.Errorf("%s after the crash: %d %s; want 200, duplicate, the first job %s", d, code, answer, first)
		}
	}
	if n := f.jobsIn("team-a"); n != 1 {
		t.Fatalf("%d jobs after the redeliveries, want 1", n)
	}
}

// TestScheduleGatewayDiesAfterTheJob: a gateway dies (to Redis) right after
// it stored the job of a run of a Forbid schedule. The schedule must already
// name that job as its latest: once the dead gateway's firing lock has
// lapsed, another run is refused while the job has not ended, instead of
// starting a second one next to it.
func TestScheduleGatewayDiesAfterTheJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	tok := f.token("team-a", api.ScopeSubmit, api.ScopeRead)
	f.mustCall("POST", "/v1/schedules", tok.Secret,
		`{"name":"nightly","cron":"0 0 1 1 *","concurrency_policy":"Forbid","job":`+jobBody+`}`, nil)

	ts := f.dyingGateway()
	req, err := http.NewRequest("POST", ts.URL+"/v1/schedules/nightly/run", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := f.jobsIn("team-a"); n != 1 {
		t.Fatalf("run on the dying gateway: %d, %d jobs; want the run's one", resp.StatusCode, n)
	}
	t.Logf("firing locks left by the dead gateway: %d", f.lapse("{jobgate}:ws:team-a:schedule:nightly:lock", ""))

	code, body := f.call("POST", "/v1/schedules/nightly/run", tok.Secret, "")
	if code != http.StatusConflict || !strings.Contains(body, "previous job still running") {
		t.Errorf("run after the crash, the first job still queued: %d %s; want 409 previous job still running", code, body)
	}
	if n := f.jobsIn("team-a"); n != 1 {
		t.Fatalf("%d jobs of a Forbid schedule at once, want 1", n)
	}
	jobs, _, err := f.st.ListJobs(context.Background(), "team-a", store.ListFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if h := f.schedHistory(tok.Secret, "nightly"); len(h) != 1 || h[0].JobID != jobs[0].ID || !h[0].Manual {
		t.Fatalf("history: %+v; want the run by hand that made job %s", h, jobs[0].ID)
	}
}
