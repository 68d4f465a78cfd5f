package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const systemToken = "system-token-0123456789"

// testDatastoreRoot is the fixture gateway's datastore root; it need not
// exist (paths that do not exist are checked as written).
const testDatastoreRoot = "/srv/jobgate-test/datastores"

type fixture struct {
	t     *testing.T
	g     *Gateway
	plane *control.Plane
	st    *store.Store
	ts    *httptest.Server
	// clk is the clock of g and its plane: the real one until a test sets it.
	clk *schedClock
	// sessions are the portal sessions signed in so far, by token.
	sessions map[string]portalLoginResult
}

// newGateway makes a gateway and its control plane as cmd/jobgate does
// (control.New, then New), with the clock now for both; its plane's
// components run only where a test starts them.
func newGateway(t testing.TB, cfg Config, ccfg control.Config, rdb redis.UniversalClient, st *store.Store, box *secretbox.Box, now func() time.Time) (*Gateway, *control.Plane) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ccfg.Now = now
	plane, err := control.New(ccfg, rdb, st, box, logger)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, rdb, st, artifact.Dir{Root: t.TempDir()}, box, plane, logger)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		g.now = now
	}
	return g, plane
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	clk := &schedClock{}
	g, plane := newGateway(t, Config{AdminToken: systemToken, DatastoreRoots: []string{testDatastoreRoot}}, control.Config{}, rdb, st, box, clk.now)
	// As `jobgate dev` and the end-to-end cluster: default may run host processes.
	if err := st.EnsureWorkspace(context.Background(), api.Workspace{Name: DefaultWorkspace, AllowHostProcess: true}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, g))
	t.Cleanup(ts.Close)
	return &fixture{t: t, g: g, plane: plane, st: st, ts: ts, clk: clk}
}

func (f *fixture) call(method, path, token, body string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mustCall is call that expects a 2xx and decodes the JSON answer.
func (f *fixture) mustCall(method, path, token, body string, out any) {
	f.t.Helper()
	code, b := f.call(method, path, token, body)
	if code/100 != 2 {
		f.t.Fatalf("%s %s: %d %s", method, path, code, b)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			f.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

func (f *fixture) workspace(name string, quotas api.Quotas) {
	f.t.Helper()
	b, _ := json.Marshal(api.Workspace{Name: name, Quotas: quotas})
	f.mustCall("POST", "/v1/workspaces", systemToken, string(b), nil)
}

func (f *fixture) token(ws string, scopes ...api.Scope) api.NewToken {
	f.t.Helper()
	b, _ := json.Marshal(map[string]any{"name": "t-" + strings.Join(scopeNames(scopes), "-"), "scopes": scopes})
	var nt api.NewToken
	f.mustCall("POST", "/v1/workspaces/"+ws+"/tokens", systemToken, string(b), &nt)
	return nt
}

func scopeNames(ss []api.Scope) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

const jobBody = `{"image":"localhost/x:1","command":["x"]}`

// objects are one workspace's things a route can name.
type objects struct {
	ws, job, token, secret string
	trigger                string
	schedule               string
	experiment             string
	datastore              string
	// model has version 1, aliased prod, registered from modelJob, and
	// version 2, which deployment serves.
	model, modelJob string
	// spareModel has one version that nothing uses: a delete of the whole
	// model succeeds.
	spareModel string
	deployment string
	// batch scores one row through deployment.
	batch string
	sweep string
}

func (f *fixture) objectsIn(ws string, admin string) objects {
	f.t.Helper()
	var j api.Job
	f.mustCall("POST", "/v1/jobs", admin, jobBody, &j)
	// A tag for MLflow's runs/delete-tag to delete.
	f.mustCall("POST", "/v1/jobs/"+j.ID+"/tags", admin, `{"tags":{"t":"1"}}`, nil)
	name := fmt.Sprintf("s%d", time.Now().UnixNano())
	f.mustCall("POST", "/v1/secrets", admin, `{"name":"`+name+`","value":"v-`+ws+`"}`, nil)
	tok := f.token(ws, api.ScopeRead)
	trg := fmt.Sprintf("trg-%d", time.Now().UnixNano())
	f.mustCall("POST", "/v1/triggers", admin, triggerBody(trg), nil)
	sch := fmt.Sprintf("sch-%d", time.Now().UnixNano())
	f.mustCall("POST", "/v1/schedules", admin, scheduleBody(sch), nil)
	ds := fmt.Sprintf("ds-%d", time.Now().UnixNano())
	f.mustCall("POST", "/v1/datastores", admin, datastoreBody(ds), nil)
	exp := fmt.Sprintf("exp-%d", time.Now().UnixNano())
	f.mustCall("POST", "/v1/jobs", admin, `{"image":"localhost/x:1","command":["x"],"experiment":"`+exp+`"}`, nil)
	if err := f.g.artifacts.Put(context.Background(), artifact.OutputPrefix(j.ID)+"out.txt", strings.NewReader("out")); err != nil {
		f.t.Fatal(err)
	}
	mj := f.endedJob(ws, admin, api.StatusSucceeded, map[string]string{"model.json": "m-" + ws})
	model := fmt.Sprintf("m-%d", time.Now().UnixNano())
	f.register(admin, model, mj.ID, "model.json")
	f.mustCall("PUT", "/v1/models/"+model+"/aliases/prod", admin, `{"version":1}`, nil)
	f.register(admin, model, mj.ID, "model.json")
	// Tags for MLflow's registered-models/delete-tag and model-versions/delete-tag.
	f.mlflowOK("POST", "registered-models/set-tag", admin, `{"name":"`+model+`","key":"t","value":"1"}`)
	f.mlflowOK("POST", "model-versions/set-tag", admin, `{"name":"`+model+`","version":"1","key":"t","value":"1"}`)
	dep := fmt.Sprintf("dep-%d", time.Now().UnixNano())
	f.mustCall("POST", "/v1/deployments", admin, deploymentBody(dep, model+":2"), nil)
	var b api.BatchAccepted
	f.mustCall("POST", "/v1/deployments/"+dep+"/batch", admin, batchBody, &b)
	var sw api.Sweep
	f.mustCall("POST", "/v1/sweeps", admin, isolationSweepBody, &sw)
	spare := fmt.Sprintf("spare-%d", time.Now().UnixNano())
	f.register(admin, spare, mj.ID, "model.json")
	return objects{ws: ws, job: j.ID, token: tok.ID, secret: name, trigger: trg, schedule: sch, experiment: exp, datastore: ds,
		model: model, modelJob: mj.ID, spareModel: spare, deployment: dep, batch: b.ID, sweep: sw.ID}
}

// isolationSweepBody is a sweep of one trial.
const isolationSweepBody = `{"trial":{"image":"localhost/x:1","command":["x","{{ .params.n }}"]},"sampling":{"type":"grid"},` +
	`"search_space":{"n":{"type":"randint","upper":1}},"objective":{"metric":"m","goal":"minimize"}}`

// batchBody is a batch of one row.
const batchBody = `{"requests":[{"inputs":[]}]}`

func fill(method, path string, o objects) string {
	r := strings.NewReplacer(":ws", o.ws, ":id", o.job, ":name", o.secret, "/artifacts/*", "/artifacts/out.txt")
	if strings.Contains(path, "/tokens/:id") {
		r = strings.NewReplacer(":ws", o.ws, ":id", o.token)
	}
	if strings.HasPrefix(path, "/v1/triggers") {
		r = strings.NewReplacer(":name", o.trigger)
	}
	if strings.HasPrefix(path, "/v1/schedules") {
		r = strings.NewReplacer(":name", o.schedule)
	}
	if strings.HasPrefix(path, "/v1/experiments") {
		r = strings.NewReplacer(":name", o.experiment)
	}
	if strings.HasPrefix(path, "/v1/datastores") {
		r = strings.NewReplacer(":name", o.datastore)
	}
	if strings.HasPrefix(path, "/v1/models") {
		r = strings.NewReplacer(":name", o.model, ":v", "1", ":alias", "prod")
	}
	if path == "/v1/models/:name" && method == http.MethodDelete {
		r = strings.NewReplacer(":name", o.spareModel)
	}
	if strings.HasPrefix(path, "/v1/deployments") {
		r = strings.NewReplacer(":name", o.deployment)
	}
	if strings.HasPrefix(path, "/v1/batches") {
		r = strings.NewReplacer(":id", o.batch)
	}
	if strings.HasPrefix(path, "/v1/sweeps") {
		r = strings.NewReplacer(":id", o.sweep)
	}
	switch path {
	case mlflowPrefix + "runs/get":
		return path + "?run_id=" + o.job
	case mlflowPrefix + "experiments/get-by-name":
		return path + "?experiment_name=" + o.experiment
	case mlflowPrefix + "experiments/get":
		return path + "?experiment_id=" + o.experiment
	case mlflowPrefix + "metrics/get-history":
		return path + "?metric_key=m&run_id=" + o.job
	case mlflowPrefix + "artifacts/list":
		return path + "?run_id=" + o.job
	case mlflowPrefix + "metrics/get-history-bulk-interval":
		return path + "?metric_key=m&run_ids=" + o.job
	case mlflowPrefix + "registered-models/get", mlflowPrefix + "registered-models/get-latest-versions":
		return path + "?name=" + o.model
	case mlflowPrefix + "registered-models/alias":
		return path + "?name=" + o.model + "&alias=prod"
	case mlflowPrefix + "model-versions/get", mlflowPrefix + "model-versions/get-download-uri":
		return path + "?name=" + o.model + "&version=1"
	case mlflowArtifactsPrefix + "artifacts":
		return path + "?path=" + o.job
	case mlflowArtifactsPrefix + "artifacts/*":
		return mlflowArtifactsPrefix + "artifacts/" + o.job + "/out.txt"
	}
	return r.Replace(path)
}

// namesObject reports whether a route names one object of a workspace, so
// that another workspace's is a 404: by a path parameter, or (MLflow, a
// model's registration) by a run, experiment or job in its query or body.
func namesObject(method, path string) bool {
	if method == http.MethodPost && path == "/v1/models" {
		return true
	}
	if strings.HasPrefix(path, mlflowPrefix) {
		// Searches and lists name no one object: another workspace's
		// experiment is none of the caller's, and finds no runs.
		switch strings.TrimPrefix(path, mlflowPrefix) {
		case "runs/create", "experiments/create", "experiments/search", "experiments/list", "runs/search",
			"registered-models/create", "registered-models/search", "model-versions/search":
			return false
		}
		return true
	}
	if strings.HasPrefix(path, mlflowArtifactsPrefix) {
		return true // a run, by its path
	}
	return strings.Contains(path, ":")
}

func bodyFor(method, path string, o objects) string {
	if strings.HasPrefix(path, mlflowPrefix) && method == http.MethodPatch {
		switch strings.TrimPrefix(path, mlflowPrefix) {
		case "registered-models/update":
			return `{"name":"` + o.model + `","description":"d"}`
		case "model-versions/update":
			return `{"name":"` + o.model + `","version":"1"}`
		}
	}
	if method == http.MethodDelete && path == mlflowPrefix+"model-versions/delete" {
		return `{"name":"` + o.model + `","version":"1"}`
	}
	if method == http.MethodDelete && path == mlflowPrefix+"registered-models/delete" {
		return `{"name":"` + o.spareModel + `"}`
	}
	if method == http.MethodDelete && path == mlflowPrefix+"registered-models/delete-tag" {
		return `{"name":"` + o.model + `","key":"t"}`
	}
	if method == http.MethodDelete && path == mlflowPrefix+"model-versions/delete-tag" {
		return `{"name":"` + o.model + `","version":"1","key":"t"}`
	}
	if method == http.MethodPut && strings.HasPrefix(path, mlflowArtifactsPrefix) {
		return "x"
	}
	if strings.HasPrefix(path, mlflowPrefix) && method == http.MethodPost {
		switch strings.TrimPrefix(path, mlflowPrefix) {
		case "registered-models/create":
			return fmt.Sprintf(`{"name":"rm-%d"}`, time.Now().UnixNano())
		case "registered-models/get-latest-versions":
			return `{"name":"` + o.model + `"}`
		case "registered-models/set-tag":
			return `{"name":"` + o.model + `","key":"k","value":"v"}`
		case "model-versions/set-tag":
			return `{"name":"` + o.model + `","version":"1","key":"k","value":"v"}`
		case "registered-models/alias":
			return `{"name":"` + o.model + `","alias":"champ","version":"1"}`
		case "model-versions/create":
			return `{"name":"` + o.model + `","source":"runs:/` + o.modelJob + `/model.json","run_id":"` + o.modelJob + `"}`
		case "experiments/create":
			return fmt.Sprintf(`{"name":"made-%d"}`, time.Now().UnixNano())
		case "runs/create":
			return `{"experiment_id":"0","run_name":"r"}`
		case "runs/update":
			return `{"run_id":"` + o.job + `","status":"RUNNING"}`
		case "runs/log-metric":
			return `{"run_id":"` + o.job + `","key":"m","value":1,"timestamp":1700000000000,"step":0}`
		case "runs/log-batch":
			return `{"run_id":"` + o.job + `","metrics":[{"key":"m","value":1,"timestamp":1700000000000,"step":1}]}`
		case "runs/log-parameter":
			return `{"run_id":"` + o.job + `","key":"p","value":"1"}`
		case "runs/set-tag":
			return `{"run_id":"` + o.job + `","key":"t","value":"1"}`
		case "runs/delete", "runs/restore":
			return `{"run_id":"` + o.job + `"}`
		case "runs/delete-tag":
			return `{"run_id":"` + o.job + `","key":"t"}`
		case "runs/search":
			return `{"experiment_ids":["` + o.experiment + `"]}`
		case "experiments/search":
			return `{}`
		case "experiments/delete", "experiments/restore":
			return `{"experiment_id":"` + o.experiment + `"}`
		case "experiments/update":
			return `{"experiment_id":"` + o.experiment + `","new_name":"` + o.experiment + `"}`
		case "experiments/set-experiment-tag":
			return `{"experiment_id":"` + o.experiment + `","key":"k","value":"v"}`
		}
	}
	switch {
	case method == http.MethodPut && strings.HasPrefix(path, "/v1/models/"):
		return `{"version":1}`
	case method == http.MethodPatch && strings.HasPrefix(path, "/v1/deployments/"):
		return `{"replicas":2}`
	case method == http.MethodPatch && strings.HasPrefix(path, "/v1/triggers/"):
		return `{"filter":{"event":"release"}}`
	case method == http.MethodPatch && strings.HasPrefix(path, "/v1/schedules/"):
		return `{"cron":"0 0 2 1 *"}`
	case method != http.MethodPost:
		return ""
	case strings.HasSuffix(path, "/:id/metrics"):
		return `{"metrics":[{"name":"m","value":1}]}`
	case strings.HasSuffix(path, "/:id/params"):
		return `{"params":{"p":"1"}}`
	case strings.HasSuffix(path, "/:id/tags"):
		return `{"tags":{"t":"1"}}`
	case path == "/v1/jobs":
		return jobBody
	case path == "/v1/sweeps":
		return isolationSweepBody
	case path == "/ui/login":
		return `{"token":"` + systemToken + `"}`
	case path == "/v1/workspaces":
		return fmt.Sprintf(`{"name":"ws-%d"}`, time.Now().UnixNano())
	case strings.HasSuffix(path, "/tokens"):
		return `{"name":"new","scopes":["read"]}`
	case path == "/v1/secrets":
		return `{"name":"made","value":"x"}`
	case path == "/v1/triggers":
		return triggerBody(fmt.Sprintf("made-%d", time.Now().UnixNano()))
	case path == "/v1/schedules":
		return scheduleBody(fmt.Sprintf("made-%d", time.Now().UnixNano()))
	case path == "/v1/datastores":
		return datastoreBody(fmt.Sprintf("made-%d", time.Now().UnixNano()))
	case path == "/v1/models":
		return `{"name":"made","job_id":"` + o.modelJob + `","path":"model.json"}`
	case strings.HasSuffix(path, "/batch"):
		return batchBody
	case path == "/v1/deployments":
		return deploymentBody(fmt.Sprintf("made-%d", time.Now().UnixNano()), o.model+":1")
	case strings.HasSuffix(path, "/exec"):
		return `{"command":["x"]}`
	}
	return ""
}

// TestIsolationMatrix walks every route × every scope × own and other
// workspace. A route added without an access rule fails here.
func TestIsolationMatrix(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	adminA, adminB := f.token("team-a", api.ScopeAdmin), f.token("team-b", api.ScopeAdmin)

	for _, r := range f.g.echo.Routes() {
		if _, ok := f.g.rules[r.Method+" "+r.Path]; !ok {
			t.Errorf("route %s %s has no access rule: register it with Gateway.route", r.Method, r.Path)
		}
	}

	principals := []struct {
		name   string
		scopes []api.Scope
	}{
		{"read", []api.Scope{api.ScopeRead}},
		{"submit", []api.Scope{api.ScopeSubmit}},
		{"score", []api.Scope{api.ScopeScore}},
		{"admin", []api.Scope{api.ScopeAdmin}},
	}
	for key, rule := range f.g.rules {
		method, path, _ := strings.Cut(key, " ")
		if rule.Public {
			continue
		}
		// Every /v1 route is walked twice: with a bearer token, and through
		// the portal's /ui/api mirror with a session of the same token, which
		// must answer the same.
		vias := []string{"bearer"}
		if strings.HasPrefix(path, "/v1/") {
			vias = append(vias, "portal")
		}
		for _, p := range principals {
			tok := f.token("team-a", p.scopes...)
			allowed := !rule.System && (slices_contains(p.scopes, rule.Scope) || slices_contains(p.scopes, api.ScopeAdmin))
			for _, combo := range crossVias(vias) {
				via, target := combo[0], combo[1]
				name := fmt.Sprintf("%s %s/%s/%s", method, path, p.name, target)
				if via == "portal" {
					name = fmt.Sprintf("%s /ui/api%s/%s/%s", method, path, p.name, target)
				}
				t.Run(name, func(t *testing.T) {
					// Only the target's objects: each subtest's schedule
					// goes when it ends, and a workspace holds at most 500.
					ws, admin := "team-a", adminA.Secret
					if target == "other" {
						ws, admin = "team-b", adminB.Secret
					}
					o := f.objectsIn(ws, admin)
					// A workspace holds at most 500 schedules: each
					// subtest's goes when it ends.
					defer f.call("DELETE", "/v1/schedules/"+o.schedule, admin, "")
					names := namesObject(method, path)
					code, body := f.callVia(via, method, fill(method, path, o), tok.Secret, bodyFor(method, path, o))
					switch {
					case !allowed:
						if code != http.StatusForbidden {
							t.Fatalf("got %d %s, want 403 (token lacks the scope)", code, body)
						}
					case target == "other" && names:
						if code != http.StatusNotFound {
							t.Fatalf("got %d %s, want 404 (another workspace's object)", code, body)
						}
					case target == "other" && method == http.MethodPost && path == "/v1/deployments":
						// The deployment is the caller's own; the model
						// version it names is another workspace's, so
						// there is none.
						if code != http.StatusUnprocessableEntity || !strings.Contains(body, "no model version") {
							t.Fatalf("got %d %s, want 422 (no such model version in this workspace)", code, body)
						}
					case method == http.MethodPut && strings.HasPrefix(path, mlflowArtifactsPrefix):
						// The fixture's job is no running tracked run:
						// past access and isolation, the proxy says so.
						if code != http.StatusBadRequest || !strings.Contains(body, "INVALID_STATE") {
							t.Fatalf("got %d %s, want 400 INVALID_STATE (not a running tracked run)", code, body)
						}
					case strings.HasSuffix(path, "/infer"):
						// The fixture has no scoring router: past access
						// and isolation, "try it" can only say so.
						if code != http.StatusServiceUnavailable || !strings.Contains(body, "no scoring router configured") {
							t.Fatalf("got %d %s, want 503 (no scoring router)", code, body)
						}
					case strings.HasSuffix(path, "/exec"):
						// The fixture's jobs never run: past access and
						// isolation, exec can only say so.
						if code != http.StatusConflict {
							t.Fatalf("got %d %s, want 409 (job not running)", code, body)
						}
					default:
						if code/100 != 2 {
							t.Fatalf("got %d %s, want 2xx", code, body)
						}
						if method == http.MethodGet && !names {
							other := f.objectsIn("team-b", adminB.Secret)
							defer f.call("DELETE", "/v1/schedules/"+other.schedule, adminB.Secret, "")
							for _, leak := range []string{other.job, other.secret, other.token, other.trigger, other.schedule, `"team-b"`, other.experiment, other.datastore, other.model, other.deployment} {
								if strings.Contains(body, leak) {
									t.Fatalf("list shows %s of team-b: %s", leak, body)
								}
							}
						}
					}
					if target == "other" {
						f.assertIntact(o, adminB.Secret)
					}
				})
			}
		}
	}
}

// crossVias is every (via, target) pair: each way of calling, on the
// caller's own workspace and another.
func crossVias(vias []string) [][2]string {
	var out [][2]string
	for _, v := range vias {
		for _, target := range []string{"own", "other"} {
			out = append(out, [2]string{v, target})
		}
	}
	return out
}

// callVia is call with a bearer token ("bearer"), or through the portal's
// /ui/api mirror with a session signed in with the same token and its CSRF
// token ("portal").
func (f *fixture) callVia(via, method, path, token, body string) (int, string) {
	f.t.Helper()
	if via == "bearer" {
		return f.call(method, path, token, body)
	}
	cookie, s := f.portalSession(token)
	code, _, b := f.portalCall(method, "/ui/api"+path, cookie, s.CSRFToken, body)
	return code, b
}

// portalSession signs in to the portal with token, once per token.
func (f *fixture) portalSession(token string) (*http.Cookie, api.PortalSession) {
	f.t.Helper()
	if f.sessions == nil {
		f.sessions = map[string]portalLoginResult{}
	}
	if ps, ok := f.sessions[token]; ok {
		return ps.cookie, ps.session
	}
	cookie, s := portalLogin(f.t, http.DefaultClient, f.ts.URL, token)
	f.sessions[token] = portalLoginResult{cookie, s}
	return cookie, s
}

type portalLoginResult struct {
	cookie  *http.Cookie
	session api.PortalSession
}

// TestPortalMirrorNeedsSessionAndCSRFEverywhere: every REST route through
// /ui/api answers 401 without a session cookie, and every one that is not a
// GET answers 403 without the session's CSRF token, even for the system
// admin's session.
func TestPortalMirrorNeedsSessionAndCSRFEverywhere(t *testing.T) {
	f := newFixture(t)
	cookie, _ := f.portalSession(systemToken)
	for key, rule := range f.g.rules {
		method, path, _ := strings.Cut(key, " ")
		if rule.Public || !strings.HasPrefix(path, "/v1/") {
			continue
		}
		p := "/ui/api" + strings.NewReplacer(":ws", "default", ":id", "x", ":name", "x", ":v", "1", ":alias", "a", "*", "x").Replace(path)
		code, _, body := f.portalCall(method, p, nil, "", bodyFor(method, path, objects{job: "x"}))
		var e api.ErrorBody
		if code != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != api.CodeUnauthorized {
			t.Errorf("%s %s without a session: %d %s, want 401 unauthorized", method, p, code, body)
		}
		if method == http.MethodGet {
			continue
		}
		code, _, body = f.portalCall(method, p, cookie, "", bodyFor(method, path, objects{job: "x"}))
		if code != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != api.CodeForbidden || !strings.Contains(body, csrfHeader) {
			t.Errorf("%s %s without X-CSRF-Token: %d %s, want 403 naming %s", method, p, code, body, csrfHeader)
		}
	}
}

// assertIntact checks that a refused call changed nothing in o's workspace.
func (f *fixture) assertIntact(o objects, admin string) {
	f.t.Helper()
	var j api.Job
	f.mustCall("GET", "/v1/jobs/"+o.job, admin, "", &j)
	if j.Status != api.StatusQueued {
		f.t.Fatalf("other workspace's job is %s after a refused call", j.Status)
	}
	_, body := f.call("GET", "/v1/secrets", admin, "")
	if !strings.Contains(body, o.secret) {
		f.t.Fatalf("other workspace's secret %s is gone: %s", o.secret, body)
	}
	_, body = f.call("GET", "/v1/workspaces/"+o.ws+"/tokens", admin, "")
	if !strings.Contains(body, o.token) {
		f.t.Fatalf("other workspace's token %s is gone: %s", o.token, body)
	}
	var trg api.Trigger
	if code, body := f.call("GET", "/v1/triggers/"+o.trigger, admin, ""); code != http.StatusOK {
		f.t.Fatalf("other workspace's trigger %s is gone: %d %s", o.trigger, code, body)
	} else if json.Unmarshal([]byte(body), &trg) != nil || trg.Filter.Event != "push" || trg.UpdatedAt != nil {
		f.t.Fatalf("other workspace's trigger %s changed after a refused call: %s", o.trigger, body)
	}
	if code, body := f.call("GET", "/v1/datastores/"+o.datastore, admin, ""); code != http.StatusOK {
		f.t.Fatalf("other workspace's datastore %s is gone: %d %s", o.datastore, code, body)
	}
	var mv api.ModelVersion
	f.mustCall("GET", "/v1/models/"+o.model+"/versions/prod", admin, "", &mv)
	if mv.Version != 1 {
		f.t.Fatalf("other workspace's model %s@prod is version %d after a refused call", o.model, mv.Version)
	}
	if code, _ := f.call("GET", "/v1/models/made", admin, ""); code != http.StatusNotFound {
		f.t.Fatalf("a refused call made model \"made\" in the other workspace: %d", code)
	}
	var dep api.Deployment
	f.mustCall("GET", "/v1/deployments/"+o.deployment, admin, "", &dep)
	if dep.Status == api.DeploymentDeleting || dep.Spec.Replicas != nil || dep.Revision != 1 {
		f.t.Fatalf("other workspace's deployment %s changed after a refused call: %+v", o.deployment, dep)
	}
	var sch struct {
		Paused bool
		Cron   string
	}
	f.mustCall("GET", "/v1/schedules/"+o.schedule, admin, "", &sch)
	var hist struct{ History []json.RawMessage }
	f.mustCall("GET", "/v1/schedules/"+o.schedule+"/history", admin, "", &hist)
	if sch.Paused || sch.Cron != "0 0 1 1 *" || len(hist.History) != 0 {
		f.t.Fatalf("other workspace's schedule %s changed after a refused call: paused %v, cron %q, history %d", o.schedule, sch.Paused, sch.Cron, len(hist.History))
	}
}

func slices_contains(ss []api.Scope, s api.Scope) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestBadTokensAreUnauthorizedEverywhere(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	revoked := f.token("team-a", api.ScopeAdmin)
	f.mustCall("DELETE", "/v1/workspaces/team-a/tokens/"+revoked.ID, systemToken, "", nil)
	soon := time.Now().Add(time.Second)
	b, _ := json.Marshal(map[string]any{"name": "short", "scopes": []string{"admin"}, "expires_at": soon})
	var expiring api.NewToken
	f.mustCall("POST", "/v1/workspaces/team-a/tokens", systemToken, string(b), &expiring)
	f.g.now = func() time.Time { return soon.Add(time.Minute) }
	defer func() { f.g.now = time.Now }()

	for key, rule := range f.g.rules {
		if rule.Public {
			continue
		}
		method, path, _ := strings.Cut(key, " ")
		for name, tok := range map[string]string{"none": "", "garbage": "jgt_garbage", "revoked": revoked.Secret, "expired": expiring.Secret} {
			code, body := f.call(method, strings.NewReplacer(":ws", "team-a", ":id", "x", ":name", "x").Replace(path), tok, bodyFor(method, path, objects{job: "x"}))
			var e api.ErrorBody
			var me mlflowError
			if strings.HasPrefix(path, mlflowPrefix) || strings.HasPrefix(path, mlflowArtifactsPrefix) {
				if code != http.StatusUnauthorized || json.Unmarshal([]byte(body), &me) != nil || me.ErrorCode != "UNAUTHENTICATED" {
					t.Errorf("%s %s with %s token: %d %s, want 401 UNAUTHENTICATED", method, path, name, code, body)
				}
				continue
			}
			if code != http.StatusUnauthorized || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != api.CodeUnauthorized {
				t.Errorf("%s %s with %s token: %d %s, want 401 unauthorized", method, path, name, code, body)
			}
		}
	}
}

func TestTokenSecretsAreShownOnceAndStoredHashed(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	nt := f.token("team-a", api.ScopeRead)
	if !strings.HasPrefix(nt.Secret, TokenPrefix) {
		t.Fatalf("token %q lacks the %s prefix", nt.Secret, TokenPrefix)
	}
	_, body := f.call("GET", "/v1/workspaces/team-a/tokens", systemToken, "")
	if strings.Contains(body, nt.Secret) {
		t.Fatal("token list shows a secret")
	}
	if strings.Contains(testenv.RedisValues(t, f.st.Redis()), nt.Secret) {
		t.Fatal("redis holds the token in clear")
	}
	// It works, and last_used_at is recorded.
	f.mustCall("GET", "/v1/jobs", nt.Secret, "", nil)
	var list struct{ Tokens []api.Token }
	f.mustCall("GET", "/v1/workspaces/team-a/tokens", systemToken, "", &list)
	if len(list.Tokens) != 1 || list.Tokens[0].LastUsedAt == nil {
		t.Fatalf("tokens: %+v; want one with last_used_at", list.Tokens)
	}
}

func TestWorkspaceRateLimit(t *testing.T) {
	f := newFixture(t)
	f.workspace("slow", api.Quotas{RequestsPerSecond: 2})
	f.workspace("other", api.Quotas{})
	tok, other := f.token("slow", api.ScopeRead), f.token("other", api.ScopeRead)
	jobsBefore, _, _ := f.st.ListJobs(context.Background(), "slow", store.ListFilter{})
	limited := 0
	var retryAfter string
	for range 20 {
		req, _ := http.NewRequest("GET", f.ts.URL+"/v1/jobs", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	if limited == 0 || retryAfter == "" {
		t.Fatalf("20 quick requests at 2/s: %d limited, Retry-After %q; want some 429 with Retry-After", limited, retryAfter)
	}
	// Another workspace is not affected.
	if code, body := f.call("GET", "/v1/jobs", other.Secret, ""); code != 200 {
		t.Fatalf("other workspace: %d %s", code, body)
	}
	jobsAfter, _, _ := f.st.ListJobs(context.Background(), "slow", store.ListFilter{})
	if len(jobsAfter) != len(jobsBefore) {
		t.Fatal("rate-limited requests changed something")
	}
}

func TestSubmitChecksWorkspaceRules(t *testing.T) {
	f := newFixture(t)
	b, _ := json.Marshal(api.Workspace{Name: "strict", ImageAllowlist: []string{"registry.example.com/strict/"}})
	f.mustCall("POST", "/v1/workspaces", systemToken, string(b), nil)
	tok := f.token("strict", api.ScopeAdmin)
	tests := []struct {
		name, body, mentions string
	}{
		{"image not allowed", `{"image":"localhost/x:1","command":["x"]}`, "not allowed"},
		{"unknown secret", `{"image":"registry.example.com/strict/x:1","command":["x"],"secrets":{"DB":"nope"}}`, "no secret named"},
		{"secret also in env", `{"image":"registry.example.com/strict/x:1","command":["x"],"env":{"DB":"1"},"secrets":{"DB":"db"}}`, "also set in env"},
		{"bad user", `{"image":"registry.example.com/strict/x:1","command":["x"],"user":"root; rm"}`, "user"},
	}
	for _, tt := range tests {
		code, body := f.call("POST", "/v1/jobs", tok.Secret, tt.body)
		if code != http.StatusUnprocessableEntity || !strings.Contains(body, tt.mentions) {
			t.Errorf("%s: %d %s, want 422 mentioning %q", tt.name, code, body, tt.mentions)
		}
	}
	f.mustCall("POST", "/v1/jobs", tok.Secret, `{"image":"registry.example.com/strict/x:1","command":["x"]}`, nil)
	if code, body := f.call("POST", "/v1/workspaces", tok.Secret, `{"name":"mine"}`); code != http.StatusForbidden {
		t.Fatalf("workspace admin created a workspace: %d %s", code, body)
	}
}

func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	var j api.Job
	f.mustCall("POST", "/v1/jobs", admin.Secret, jobBody, &j)
	f.mustCall("POST", "/v1/jobs/"+j.ID+"/cancel", admin.Secret, "", nil)
	f.mustCall("POST", "/v1/secrets", admin.Secret, `{"name":"db_pass","value":"hunter2-secret"}`, nil)
	var out struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", admin.Secret, "", &out)
	var got []string
	for _, e := range out.Entries {
		got = append(got, e.Action+" by "+e.Actor)
	}
	want := []string{"secret.put by t-admin", "job.cancel by t-admin", "job.submit by t-admin", "token.create by system-admin", "workspace.create by system-admin"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Fatalf("audit (newest first) = %v\nwant %v", got, want)
	}
	raw, _ := json.Marshal(out)
	if strings.Contains(string(raw), "hunter2-secret") {
		t.Fatal("audit log shows a secret value")
	}
	_, body := f.call("GET", "/v1/secrets", admin.Secret, "")
	if strings.Contains(body, "hunter2-secret") {
		t.Fatal("secret list shows a value")
	}
}
