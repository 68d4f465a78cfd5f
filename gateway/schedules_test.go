package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// scheduleBody is a schedule that does not fire during a test: once a year,
// and the fixture runs no firing loop unless a test starts one.
func scheduleBody(name string) string {
	return `{"name":"` + name + `","cron":"0 0 1 1 *","job":` + jobBody + `}`
}

// schedClock is a settable clock for a gateway and its control plane, safe
// to read from handlers and loops; the real clock until set.
type schedClock struct{ ns atomic.Int64 }

func (c *schedClock) now() time.Time {
	if ns := c.ns.Load(); ns != 0 {
		return time.Unix(0, ns).UTC()
	}
	return time.Now()
}
func (c *schedClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

// clock sets the fixture's clock (its gateway's and plane's) to at.
func (f *fixture) clock(at time.Time) *schedClock {
	f.clk.set(at)
	return f.clk
}

func (f *fixture) schedHistory(token, name string) []store.ScheduleRun {
	f.t.Helper()
	var out struct{ History []store.ScheduleRun }
	f.mustCall("GET", "/v1/schedules/"+name+"/history", token, "", &out)
	return out.History
}

func (f *fixture) schedJobs(ws string) []api.Job {
	f.t.Helper()
	jobs, _, err := f.st.ListJobs(context.Background(), ws, store.ListFilter{Limit: 500})
	if err != nil {
		f.t.Fatal(err)
	}
	return jobs
}

// startScheduleLoop runs plane's firing loop, and the leader elector it
// follows, until the returned stop is called (or the test ends); stop
// returns once both have ended, the loop first, as cmd/jobgate stops them.
func startScheduleLoop(t *testing.T, plane *control.Plane) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	electCtx, stopElect := context.WithCancel(context.Background())
	done, elected := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(elected)
		if err := plane.Elector.Run(electCtx); err != nil {
			t.Errorf("elector: %v", err)
		}
	}()
	go func() {
		defer close(done)
		if err := plane.Cron.Run(ctx); err != nil {
			t.Errorf("cron: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done; stopElect(); <-elected }) }
	t.Cleanup(stop)
	return stop
}

// ticks lists a history as "scheduled_at fired|skipped", newest first.
func ticks(h []store.ScheduleRun) []string {
	out := make([]string, len(h))
	for i, r := range h {
		what := "fired"
		if r.JobID == "" {
			what = "skipped"
		}
		out[i] = r.ScheduledAt.UTC().Format(time.RFC3339) + " " + what
	}
	return out
}

func TestScheduleValidation(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	tok := f.token("team-a", api.ScopeSubmit, api.ScopeRead)
	body := func(mod func(m map[string]any)) string {
		m := map[string]any{"name": "nightly", "cron": "0 2 * * *", "job": json.RawMessage(jobBody)}
		mod(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, body, mentions string
	}{
		{"bad name", body(func(m map[string]any) { m["name"] = "-x" }), "name"},
		{"no cron", body(func(m map[string]any) { delete(m, "cron") }), "cron"},
		{"minute out of range", body(func(m map[string]any) { m["cron"] = "61 * * * *" }), "cron"},
		{"seven fields", body(func(m map[string]any) { m["cron"] = "0 0 0 1 1 * 2030" }), "cron"},
		{"never fires", body(func(m map[string]any) { m["cron"] = "0 0 30 2 *" }), "cron"},
		{"time zone prefix", body(func(m map[string]any) { m["cron"] = "CRON_TZ=UTC 0 2 * * *" }), "cron"},
		{"unknown zone", body(func(m map[string]any) { m["timezone"] = "Mars/Olympus_Mons" }), "timezone"},
		{"local zone", body(func(m map[string]any) { m["timezone"] = "Local" }), "timezone"},
		{"bad policy", body(func(m map[string]any) { m["concurrency_policy"] = "forbid" }), "concurrency_policy"},
		{"negative deadline", body(func(m map[string]any) { m["starting_deadline_seconds"] = -1 }), "starting_deadline_seconds"},
		{"no job", body(func(m map[string]any) { delete(m, "job") }), "job is required"},
		{"job without command", body(func(m map[string]any) { m["job"] = map[string]any{"image": "localhost/x:1"} }), "job: command"},
		{"job with unknown field", body(func(m map[string]any) {
			m["job"] = map[string]any{"image": "localhost/x:1", "command": []string{"x"}, "gpu": 1}
		}), "job: unknown field"},
		{"job naming a missing secret", body(func(m map[string]any) {
			m["job"] = map[string]any{"image": "localhost/x:1", "command": []string{"x"}, "secrets": map[string]string{"DB": "nope"}}
		}), "no secret named"},
		{"job no worker could run", body(func(m map[string]any) {
			m["job"] = map[string]any{"image": "localhost/x:1", "command": []string{"x"}, "resources": map[string]any{"gpus": 1}}
		}), "job: resources.gpus"},
		{"unknown field", body(func(m map[string]any) { m["suspend"] = true }), "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, got := f.call("POST", "/v1/schedules", tok.Secret, tt.body)
			if code != http.StatusUnprocessableEntity || !strings.Contains(got, tt.mentions) {
				t.Fatalf("%d %s, want 422 mentioning %q", code, got, tt.mentions)
			}
		})
	}

	for _, cron := range []string{"0 2 * * *", "*/10 * * * * *", "@hourly", "@every 6h"} {
		name := strings.NewReplacer(" ", "", "*", "x", "/", "-", "@", "").Replace(cron)
		f.mustCall("POST", "/v1/schedules", tok.Secret, body(func(m map[string]any) { m["name"], m["cron"] = name, cron }), nil)
	}
	if code, got := f.call("POST", "/v1/schedules", tok.Secret, body(func(m map[string]any) { m["name"] = "0 2xxx" })); code != http.StatusUnprocessableEntity {
		t.Fatalf("name with a space: %d %s", code, got)
	}
	if code, got := f.call("POST", "/v1/schedules", tok.Secret, body(func(m map[string]any) { m["name"] = "02xxx" })); code != http.StatusConflict {
		t.Fatalf("second schedule of the same name: %d %s, want 409", code, got)
	}
	var list struct{ Schedules []api.Schedule }
	f.mustCall("GET", "/v1/schedules", tok.Secret, "", &list)
	var names []string
	for _, s := range list.Schedules {
		names = append(names, s.Name+" "+s.Timezone+" "+s.ConcurrencyPolicy)
	}
	want := []string{"02xxx UTC Allow", "every6h UTC Allow", "hourly UTC Allow", "x-10xxxxx UTC Allow"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("schedules (-want +got):\n%s", diff)
	}
}

// TestScheduleNextFireTimes: "0 2 * * *" in Europe/Amsterdam across the
// night the clocks go forward (no 02:00 on 29 March 2026: it fires at 03:00).
func TestScheduleNextFireTimes(t *testing.T) {
	f := newFixture(t)
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	f.clock(time.Date(2026, 3, 27, 12, 0, 0, 0, ams))
	f.mustCall("POST", "/v1/schedules", systemToken,
		`{"name":"nightly","cron":"0 2 * * *","timezone":"Europe/Amsterdam","concurrency_policy":"Forbid","job":`+jobBody+`}`, nil)
	var got struct {
		Next   []string
		Paused bool
	}
	f.mustCall("GET", "/v1/schedules/nightly", systemToken, "", &got)
	want := []string{"2026-03-28T02:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00",
		"2026-03-31T02:00:00+02:00", "2026-04-01T02:00:00+02:00"}
	if diff := cmp.Diff(want, got.Next); diff != "" || got.Paused {
		t.Fatalf("next (-want +got):\n%s\npaused %v", diff, got.Paused)
	}
}

// TestScheduleForbid fires a per-second schedule on the real clock: its
// first job stays queued (no workers), so later ticks are skipped; once
// that job is canceled through the API, the next tick fires again.
func TestScheduleForbid(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	tok := f.token("team-a", api.ScopeSubmit, api.ScopeRead)
	f.mustCall("POST", "/v1/schedules", tok.Secret,
		`{"name":"every-second","cron":"*/1 * * * * *","concurrency_policy":"Forbid","job":`+jobBody+`}`, nil)
	stop := startScheduleLoop(t, f.plane)

	firstJob := func(h []store.ScheduleRun) (fired, skipped int) {
		for _, r := range h {
			switch {
			case r.JobID != "":
				fired++
			case strings.HasPrefix(r.SkippedReason, "previous job still running"):
				skipped++
			}
		}
		return fired, skipped
	}
	testenv.Eventually(t, 15*time.Second, func() bool {
		fired, skipped := firstJob(f.schedHistory(tok.Secret, "every-second"))
		return fired == 1 && skipped >= 2
	}, "want one fired tick, then two skipped: %v", ticks(f.schedHistory(tok.Secret, "every-second")))
	jobs := f.schedJobs("team-a")
	if len(jobs) != 1 {
		t.Fatalf("%d jobs under Forbid, want 1", len(jobs))
	}
	first := jobs[0].ID

	f.mustCall("POST", "/v1/jobs/"+first+"/cancel", tok.Secret, "", nil)
	testenv.Eventually(t, 15*time.Second, func() bool { return len(f.schedJobs("team-a")) == 2 },
		"no new job after the first was canceled: %v", ticks(f.schedHistory(tok.Secret, "every-second")))
	stop()

	h := f.schedHistory(tok.Secret, "every-second")
	var order []string
	for i := len(h) - 1; i >= 0; i-- { // oldest first
		switch r := h[i]; {
		case r.JobID != "":
			order = append(order, "fired "+r.JobID)
		case len(order) == 0 || order[len(order)-1] != "skipped":
			order = append(order, "skipped")
		}
	}
	if len(order) < 3 || order[0] != "fired "+first || order[1] != "skipped" || !strings.HasPrefix(order[2], "fired ") {
		t.Fatalf("history, oldest first, skips collapsed: %v; want fired %s, skipped, fired", order, first)
	}
	for _, r := range h {
		if r.JobID == "" && !strings.Contains(r.SkippedReason, first) {
			t.Fatalf("skipped reason %q does not name the running job %s", r.SkippedReason, first)
		}
	}
}

// TestScheduleFiresOncePerTickAcrossGateways runs two gateways' firing loops
// on one Redis with a per-second schedule. With distinct scheduler IDs one
// leads; with the same ID both believe they lead, so only the tick claims
// keep each tick to one job.
func TestScheduleFiresOncePerTickAcrossGateways(t *testing.T) {
	for _, tt := range []struct {
		name     string
		secondID string
	}{
		{"one leader", "second-gateway"},
		{"both think they lead", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			_, plane2 := newGateway(t, Config{AdminToken: systemToken}, control.Config{ID: cmpOrString(tt.secondID, f.plane.Elector.ID())},
				f.st.Redis(), f.st, nil, nil)
			f.mustCall("POST", "/v1/schedules", systemToken, `{"name":"tick","cron":"* * * * * *","job":`+jobBody+`}`, nil)
			stop1, stop2 := startScheduleLoop(t, f.plane), startScheduleLoop(t, plane2)
			testenv.Eventually(t, 20*time.Second, func() bool { return len(f.schedHistory(systemToken, "tick")) >= 4 },
				"the schedule fired fewer than 4 times: %v", ticks(f.schedHistory(systemToken, "tick")))
			stop1()
			stop2()

			h := f.schedHistory(systemToken, "tick")
			seenTick, seenJob := map[time.Time]bool{}, map[string]bool{}
			for _, r := range h {
				if seenTick[r.ScheduledAt] {
					t.Fatalf("tick %s is in the history twice: %v", r.ScheduledAt, ticks(h))
				}
				seenTick[r.ScheduledAt] = true
				if r.JobID == "" || seenJob[r.JobID] {
					t.Fatalf("tick %s: job %q missing or shared: %+v", r.ScheduledAt, r.JobID, h)
				}
				seenJob[r.JobID] = true
			}
			jobs := f.schedJobs(DefaultWorkspace)
			if len(jobs) != len(h) {
				t.Fatalf("%d jobs for %d ticks", len(jobs), len(h))
			}
			for _, j := range jobs {
				if !seenJob[j.ID] {
					t.Fatalf("job %s is in no tick's history", j.ID)
				}
			}
		})
	}
}

// TestScheduleTickClaimsUnderRace runs firing passes of two gateways at the
// same instants, four at a time, so they read the same state and race to
// claim each tick: each tick still makes one job.
func TestScheduleTickClaimsUnderRace(t *testing.T) {
	f := newFixture(t)
	_, plane2 := newGateway(t, Config{AdminToken: systemToken}, control.Config{ID: "second-gateway"}, f.st.Redis(), f.st, nil, nil)
	f.mustCall("POST", "/v1/schedules", systemToken, `{"name":"tick","cron":"* * * * * *","job":`+jobBody+`}`, nil)
	t0 := time.Now().Truncate(time.Second).Add(time.Minute)
	const n = 20
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Second)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range []*control.Plane{f.plane, plane2, f.plane, plane2} {
			wg.Go(func() {
				<-start
				p.Cron.Fire(context.Background(), at)
			})
		}
		close(start)
		wg.Wait()
	}
	h := f.schedHistory(systemToken, "tick")
	seen := map[time.Time]bool{}
	for _, r := range h {
		if seen[r.ScheduledAt] || r.JobID == "" {
			t.Fatalf("tick %s twice or without a job: %v", r.ScheduledAt, ticks(h))
		}
		seen[r.ScheduledAt] = true
	}
	if len(h) != n || len(f.schedJobs(DefaultWorkspace)) != n {
		t.Fatalf("%d ticks fired, %d jobs; want %d of each", len(h), len(f.schedJobs(DefaultWorkspace)), n)
	}
}

func cmpOrString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// TestSchedulePauseResume drives the firing pass on an injected clock.
func TestSchedulePauseResume(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	clk := f.clock(t0)
	f.mustCall("POST", "/v1/schedules", systemToken, `{"name":"s","cron":"*/1 * * * * *","job":`+jobBody+`}`, nil)
	ctx := context.Background()
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }

	f.plane.Cron.Fire(ctx, sec(1)) // fires 00:00:01
	var v api.Schedule
	f.mustCall("POST", "/v1/schedules/s/pause", systemToken, "", &v)
	if !v.Paused || len(v.Next) != 0 {
		t.Fatalf("paused schedule: paused %v, next %v; want paused and no next", v.Paused, v.Next)
	}
	f.plane.Cron.Fire(ctx, sec(2))
	f.plane.Cron.Fire(ctx, sec(3))
	clk.set(sec(3.2))
	f.mustCall("POST", "/v1/schedules/s/resume", systemToken, "", &v)
	if v.Paused || len(v.Next) != 5 || !v.Next[0].Equal(sec(3.5)) {
		t.Fatalf("resumed schedule: paused %v, next %v; want next from %s", v.Paused, v.Next, sec(3.5))
	}
	f.plane.Cron.Fire(ctx, sec(4)) // 00:00:02 and 00:00:03 were due while paused: never fired

	got := ticks(f.schedHistory(systemToken, "s"))
	want := []string{"2030-01-01T00:00:04Z fired", "2030-01-01T00:00:01Z fired"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("history (-want +got):\n%s", diff)
	}
}

// TestScheduleRunNow fires by hand, under Forbid.
func TestScheduleRunNow(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	tok := f.token("team-a", api.ScopeSubmit, api.ScopeRead)
	f.mustCall("POST", "/v1/schedules", tok.Secret,
		`{"name":"nightly","cron":"0 0 1 1 *","concurrency_policy":"Forbid","job":`+jobBody+`}`, nil)
	f.mustCall("POST", "/v1/schedules/nightly/pause", tok.Secret, "", nil)

	var j api.Job
	f.mustCall("POST", "/v1/schedules/nightly/run", tok.Secret, "", &j) // paused or not
	if j.Status != api.StatusQueued || j.Workspace != "team-a" {
		t.Fatalf("run: %+v", j)
	}
	code, body := f.call("POST", "/v1/schedules/nightly/run", tok.Secret, "")
	if code != http.StatusConflict || !strings.Contains(body, "previous job still running") {
		t.Fatalf("second run while the first is queued: %d %s, want 409", code, body)
	}
	f.mustCall("POST", "/v1/jobs/"+j.ID+"/cancel", tok.Secret, "", nil)
	var j2 api.Job
	f.mustCall("POST", "/v1/schedules/nightly/run", tok.Secret, "", &j2)

	h := f.schedHistory(tok.Secret, "nightly")
	if len(h) != 2 || h[0].JobID != j2.ID || h[1].JobID != j.ID || !h[0].Manual || h[0].FiredAt == nil {
		t.Fatalf("history: %+v; want the two runs by hand, newest first", h)
	}
	var v api.Schedule
	f.mustCall("GET", "/v1/schedules/nightly", tok.Secret, "", &v)
	if v.LastJobID != j2.ID || v.LastFiredAt == nil || v.LastScheduledAt != nil {
		t.Fatalf("schedule after runs: %+v", v)
	}

	f.mustCall("POST", "/v1/schedules/nightly/resume", tok.Secret, "", nil)
	f.mustCall("DELETE", "/v1/schedules/nightly", tok.Secret, "", nil)
	for _, path := range []string{"/v1/schedules/nightly", "/v1/schedules/nightly/history"} {
		if code, body := f.call("GET", path, tok.Secret, ""); code != http.StatusNotFound {
			t.Fatalf("GET %s after delete: %d %s", path, code, body)
		}
	}
	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", systemToken, "", &audit) // default workspace: nothing of team-a's
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "schedule.") {
			t.Fatalf("team-a's %s is in the default workspace's audit log", e.Action)
		}
	}
	admin := f.token("team-a", api.ScopeAdmin)
	f.mustCall("GET", "/v1/audit", admin.Secret, "", &audit)
	var got []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "schedule.") || strings.HasPrefix(e.Action, "job.") {
			got = append(got, e.Action+" by "+e.Actor)
		}
	}
	want := []string{"schedule.delete by t-submit-read", "schedule.resume by t-submit-read",
		"schedule.run by t-submit-read", "job.submit by schedule:nightly", "job.cancel by t-submit-read",
		"schedule.run by t-submit-read", "job.submit by schedule:nightly",
		"schedule.pause by t-submit-read", "schedule.create by t-submit-read"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("audit, newest first (-want +got):\n%s", diff)
	}
}

// TestScheduleReplace cancels the previous job before starting the next.
func TestScheduleReplace(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	f.clock(t0)
	f.mustCall("POST", "/v1/schedules", systemToken,
		`{"name":"r","cron":"*/1 * * * * *","concurrency_policy":"Replace","job":`+jobBody+`}`, nil)
	ctx := context.Background()
	f.plane.Cron.Fire(ctx, t0.Add(time.Second))
	f.plane.Cron.Fire(ctx, t0.Add(2*time.Second))

	h := f.schedHistory(systemToken, "r")
	if len(h) != 2 || h[0].JobID == "" || h[1].JobID == "" {
		t.Fatalf("history: %+v; want two fired ticks", h)
	}
	var first, second api.Job
	f.mustCall("GET", "/v1/jobs/"+h[1].JobID, systemToken, "", &first)
	f.mustCall("GET", "/v1/jobs/"+h[0].JobID, systemToken, "", &second)
	if first.Status != api.StatusCanceled || second.Status != api.StatusQueued {
		t.Fatalf("first job %s, second %s; want canceled, queued", first.Status, second.Status)
	}
}

// TestScheduleMissedTicks: after downtime only the latest missed tick fires,
// and only within the starting deadline.
func TestScheduleMissedTicks(t *testing.T) {
	f := newFixture(t)
	t0 := time.Date(2030, 1, 1, 0, 10, 0, 0, time.UTC)
	f.clock(t0)
	for _, b := range []string{
		`{"name":"no-deadline","cron":"0 * * * *","job":` + jobBody + `}`,
		`{"name":"ten-minutes","cron":"0 * * * *","starting_deadline_seconds":600,"job":` + jobBody + `}`,
	} {
		f.mustCall("POST", "/v1/schedules", systemToken, b, nil)
	}
	ctx := context.Background()
	back := t0.Add(10*24*time.Hour + 20*time.Minute) // 2030-01-11 00:30, ten days later
	f.plane.Cron.Fire(ctx, back)
	f.plane.Cron.Fire(ctx, back) // nothing new is due

	h := f.schedHistory(systemToken, "no-deadline")
	if diff := cmp.Diff([]string{"2030-01-11T00:00:00Z fired"}, ticks(h)); diff != "" {
		t.Fatalf("no deadline (-want +got):\n%s", diff)
	}
	h = f.schedHistory(systemToken, "ten-minutes")
	if diff := cmp.Diff([]string{"2030-01-11T00:00:00Z skipped"}, ticks(h)); diff != "" {
		t.Fatalf("ten-minute deadline (-want +got):\n%s", diff)
	}
	if !strings.Contains(h[0].SkippedReason, "starting deadline") || h[0].FiredAt != nil {
		t.Fatalf("skipped run: %+v", h[0])
	}
	if n := len(f.schedJobs(DefaultWorkspace)); n != 1 {
		t.Fatalf("%d jobs, want 1", n)
	}

	f.plane.Cron.Fire(ctx, time.Date(2030, 1, 11, 1, 5, 0, 0, time.UTC)) // five minutes late
	h = f.schedHistory(systemToken, "ten-minutes")
	if diff := cmp.Diff([]string{"2030-01-11T01:00:00Z fired", "2030-01-11T00:00:00Z skipped"}, ticks(h)); diff != "" {
		t.Fatalf("ten-minute deadline, 5 minutes late (-want +got):\n%s", diff)
	}
	var v api.Schedule
	f.mustCall("GET", "/v1/schedules/ten-minutes", systemToken, "", &v)
	if v.LastScheduledAt == nil || !v.LastScheduledAt.Equal(time.Date(2030, 1, 11, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("last_scheduled_at %v", v.LastScheduledAt)
	}
}
