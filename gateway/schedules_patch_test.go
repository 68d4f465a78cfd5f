package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// TestSchedulePatchCronFiresNoBacklog: a new cron counts from the change.
// Its ticks between the schedule's creation and the change were never due
// under the old cron, and none fires late; the next one after the change
// fires as usual.
func TestSchedulePatchCronFiresNoBacklog(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	clk := f.clock(t0)
	f.mustCall("POST", "/v1/schedules", systemToken, scheduleBody("s"), nil) // yearly
	ctx := context.Background()

	clk.set(t0.Add(10 * time.Minute)) // 00:10:00.5; every minute since 00:01 would be a tick of the new cron
	var v api.Schedule
	f.mustCall("PATCH", "/v1/schedules/s", systemToken, `{"cron":"* * * * *"}`, &v)
	if v.Cron != "* * * * *" || len(v.Next) != 5 || !v.Next[0].Equal(time.Date(2030, 1, 1, 0, 11, 0, 0, time.UTC)) {
		t.Fatalf("patched schedule: cron %q, next %v; want every minute from 00:11", v.Cron, v.Next)
	}
	f.plane.Cron.Fire(ctx, t0.Add(10*time.Minute+30*time.Second))
	if h := f.schedHistory(systemToken, "s"); len(h) != 0 {
		t.Fatalf("history right after the change: %v, want none (00:10 was before it)", ticks(h))
	}
	f.plane.Cron.Fire(ctx, time.Date(2030, 1, 1, 0, 11, 0, 200_000_000, time.UTC))
	if diff := cmp.Diff([]string{"2030-01-01T00:11:00Z fired"}, ticks(f.schedHistory(systemToken, "s"))); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
	if n := len(f.schedJobs(DefaultWorkspace)); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}
}

// TestSchedulePatchTimezoneFiresNoBacklog: so does a new time zone that puts
// a tick between the creation and the change.
func TestSchedulePatchTimezoneFiresNoBacklog(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	clk := f.clock(t0)
	// 01:05 in UTC is an hour away; in Amsterdam (UTC+1) it was 00:05 UTC.
	f.mustCall("POST", "/v1/schedules", systemToken, `{"name":"s","cron":"5 1 * * *","job":`+jobBody+`}`, nil)
	clk.set(t0.Add(10 * time.Minute))
	var v api.Schedule
	f.mustCall("PATCH", "/v1/schedules/s", systemToken, `{"timezone":"Europe/Amsterdam"}`, &v)
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	if v.Timezone != "Europe/Amsterdam" || len(v.Next) == 0 || !v.Next[0].Equal(time.Date(2030, 1, 2, 1, 5, 0, 0, ams)) {
		t.Fatalf("patched schedule: timezone %q, next %v; want 01:05 Amsterdam tomorrow", v.Timezone, v.Next)
	}
	f.plane.Cron.Fire(context.Background(), t0.Add(11*time.Minute))
	if h := f.schedHistory(systemToken, "s"); len(h) != 0 {
		t.Fatalf("history: %v, want none (00:05 UTC was before the change)", ticks(h))
	}
}

// TestSchedulePatchFields: the job, policy and deadline change in place;
// the name, pause state and history stay; the next tick submits the new
// job; the audit log says what changed.
func TestSchedulePatchFields(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	f.clock(t0)
	f.mustCall("POST", "/v1/schedules", systemToken, `{"name":"s","cron":"* * * * *","job":`+jobBody+`}`, nil)
	ctx := context.Background()
	f.plane.Cron.Fire(ctx, t0.Add(time.Minute)) // 00:01 fires the old job

	var v api.Schedule
	f.mustCall("PATCH", "/v1/schedules/s", systemToken, `{"concurrency_policy":"Forbid","starting_deadline_seconds":30,
		"job":{"image":"localhost/y:2","command":["y","new"]}}`, &v)
	if v.Name != "s" || v.Cron != "* * * * *" || v.ConcurrencyPolicy != "Forbid" || v.StartingDeadlineSeconds != 30 ||
		v.Job.Image != "localhost/y:2" || v.Paused || v.LastJobID == "" {
		t.Fatalf("patched schedule %+v", v)
	}
	// {} changes nothing, as PATCH /v1/deployments/:name.
	var same api.Schedule
	f.mustCall("PATCH", "/v1/schedules/s", systemToken, `{}`, &same)
	if diff := cmp.Diff(v, same); diff != "" {
		t.Fatalf("empty patch (-before +after):\n%s", diff)
	}
	// Forbid now holds back the 00:02 tick: the 00:01 job never runs here.
	f.plane.Cron.Fire(ctx, t0.Add(2*time.Minute))
	h := f.schedHistory(systemToken, "s")
	if len(h) != 2 || !strings.Contains(h[0].SkippedReason, "previous job still running") {
		t.Fatalf("history %v, want 00:02 skipped under Forbid", ticks(h))
	}
	f.mustCall("PATCH", "/v1/schedules/s", systemToken, `{"concurrency_policy":"Allow"}`, nil)
	f.plane.Cron.Fire(ctx, t0.Add(3*time.Minute))
	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+f.schedHistory(systemToken, "s")[0].JobID, systemToken, "", &j)
	if j.Spec.Image != "localhost/y:2" || !cmp.Equal(j.Spec.Command, []string{"y", "new"}) {
		t.Fatalf("00:03 submitted image %s, command %v; want the patched job", j.Spec.Image, j.Spec.Command)
	}

	f.mustCall("POST", "/v1/schedules/s/pause", systemToken, "", nil)
	f.mustCall("PATCH", "/v1/schedules/s", systemToken, `{"cron":"0 * * * *"}`, &v)
	if !v.Paused || len(v.Next) != 0 {
		t.Fatalf("patched paused schedule: paused %v, next %v; want still paused", v.Paused, v.Next)
	}

	var audit api.AuditPage
	f.mustCall("GET", "/v1/audit", systemToken, "", &audit)
	var updates []string
	for _, e := range audit.Entries {
		if e.Action == "schedule.update" {
			updates = append(updates, e.Target)
		}
	}
	want := []string{"s (cron)", "s (concurrency_policy)", "s (concurrency_policy, starting_deadline_seconds, job)"}
	if diff := cmp.Diff(want, updates); diff != "" {
		t.Fatalf("schedule.update entries, newest first (-want +got):\n%s", diff)
	}
}

// TestSchedulePatchRefusals: bad patches are 422 naming the field, as on
// create, and change nothing; an unknown schedule and another workspace's
// are 404; PATCH needs the submit scope, as create does.
func TestSchedulePatchRefusals(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	tok, tokB := f.token("team-a", api.ScopeSubmit, api.ScopeRead), f.token("team-b", api.ScopeSubmit, api.ScopeRead)
	read := f.token("team-a", api.ScopeRead)
	f.mustCall("POST", "/v1/schedules", tok.Secret, scheduleBody("s"), nil)
	f.mustCall("POST", "/v1/schedules", tokB.Secret, scheduleBody("theirs"), nil)
	var before api.Schedule
	f.mustCall("GET", "/v1/schedules/s", tok.Secret, "", &before)

	cases := []struct{ name, body, mentions string }{
		{"minute out of range", `{"cron":"61 * * * *"}`, "cron"},
		{"empty cron", `{"cron":""}`, "cron"},
		{"never fires", `{"cron":"0 0 30 2 *"}`, "cron"},
		{"cron not a string", `{"cron":5}`, "cron must be"},
		{"unknown zone", `{"timezone":"Mars/Olympus_Mons"}`, "timezone"},
		{"local zone", `{"timezone":"Local"}`, "timezone"},
		{"bad policy", `{"concurrency_policy":"forbid"}`, "concurrency_policy"},
		{"negative deadline", `{"starting_deadline_seconds":-1}`, "starting_deadline_seconds"},
		{"deadline over a year", `{"starting_deadline_seconds":99999999}`, "starting_deadline_seconds"},
		{"job without command", `{"job":{"image":"localhost/x:1"}}`, "job: command"},
		{"job with unknown field", `{"job":{"image":"localhost/x:1","command":["x"],"gpu":1}}`, "job: unknown field"},
		{"job bad image", `{"job":{"image":"Not An Image","command":["x"]}}`, "job: image"},
		{"job naming a missing secret", `{"job":{"image":"localhost/x:1","command":["x"],"secrets":{"DB":"nope"}}}`, "no secret named"},
		{"name", `{"name":"other"}`, "unknown field"},
		{"paused", `{"paused":true}`, "unknown field"},
	}
	for _, tt := range cases {
		code, body := f.call("PATCH", "/v1/schedules/s", tok.Secret, tt.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tt.mentions) {
			t.Errorf("%s: %d %s, want 422 mentioning %q", tt.name, code, body, tt.mentions)
		}
	}
	if code, body := f.call("PATCH", "/v1/schedules/s", tok.Secret, ""); code != http.StatusBadRequest {
		t.Errorf("no body: %d %s, want 400", code, body)
	}
	if code, body := f.call("PATCH", "/v1/schedules/nope", tok.Secret, `{"cron":"@daily"}`); code != http.StatusNotFound {
		t.Errorf("unknown schedule: %d %s, want 404", code, body)
	}
	if code, body := f.call("PATCH", "/v1/schedules/theirs", tok.Secret, `{"cron":"@daily"}`); code != http.StatusNotFound {
		t.Errorf("team-b's schedule with team-a's token: %d %s, want 404", code, body)
	}
	if code, body := f.call("PATCH", "/v1/schedules/s", read.Secret, `{"cron":"@daily"}`); code != http.StatusForbidden {
		t.Errorf("read scope: %d %s, want 403", code, body)
	}
	var after api.Schedule
	f.mustCall("GET", "/v1/schedules/s", tok.Secret, "", &after)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("refused patches changed the schedule (-before +after):\n%s", diff)
	}
	var theirs api.Schedule
	f.mustCall("GET", "/v1/schedules/theirs", tokB.Secret, "", &theirs)
	if theirs.Cron != "0 0 1 1 *" {
		t.Fatalf("team-b's schedule changed: cron %q", theirs.Cron)
	}
}

// TestSchedulePatchConcurrent: patches of different fields at once all
// land; none undoes another.
func TestSchedulePatchConcurrent(t *testing.T) {
	f := newFixture(t)
	f.mustCall("POST", "/v1/schedules", systemToken, scheduleBody("s"), nil)
	bodies := []string{`{"cron":"0 3 * * *"}`, `{"concurrency_policy":"Replace"}`, `{"starting_deadline_seconds":60}`,
		`{"job":{"image":"localhost/y:2","command":["y"]}}`}
	done := make(chan string, len(bodies))
	for _, b := range bodies {
		go func() {
			code, body := f.call("PATCH", "/v1/schedules/s", systemToken, b)
			done <- fmt.Sprint(code, " ", body)
		}()
	}
	for range bodies {
		if r := <-done; !strings.HasPrefix(r, "200") {
			t.Fatalf("patch: %s", r)
		}
	}
	var v api.Schedule
	f.mustCall("GET", "/v1/schedules/s", systemToken, "", &v)
	got, _ := json.Marshal([]any{v.Cron, v.ConcurrencyPolicy, v.StartingDeadlineSeconds, v.Job.Image})
	if string(got) != `["0 3 * * *","Replace",60,"localhost/y:2"]` {
		t.Fatalf("after concurrent patches: %s; want all four", got)
	}
}
