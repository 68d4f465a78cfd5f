package scoring

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

const adminToken = "scoring-admin-token-0123456789"

// env is a router over a real Redis, served by an httptest server, with
// replicas that are httptest servers registered as the worker and the
// controller register them.
type env struct {
	t   *testing.T
	rdb redis.UniversalClient
	st  *store.Store
	r   *Router
	ts  *httptest.Server
	n   atomic.Int64
}

// newEnv starts a router whose table reloads only on wake-ups
// (RefreshInterval an hour), so every test also checks that a
// queue.ChannelRouting message refreshes it.
func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	cfg.AdminToken = adminToken
	cfg.ID = cmp.Or(cfg.ID, "router-test")
	cfg.RefreshInterval = cmp.Or(cfg.RefreshInterval, time.Hour)
	r, err := New(cfg, rdb, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		r.Close()
	})
	testenv.Eventually(t, 5*time.Second, r.Ready, "router never loaded its table")
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return &env{t: t, rdb: rdb, st: st, r: r, ts: ts}
}

// deploy writes deployment name of ws with targets "model:version" →
// weight, as the API does.
func (e *env) deploy(ws, name string, autoscale *api.Autoscale, targets ...api.DeploymentTarget) {
	e.t.Helper()
	rec := store.DeploymentRecord{Workspace: ws, Spec: api.DeploymentSpec{Name: name, Autoscale: autoscale}, Targets: targets, Revision: 1}
	if err := e.st.PutDeployment(context.Background(), rec, true); err != nil {
		e.t.Fatal(err)
	}
	e.notify()
}

func (e *env) notify() {
	e.t.Helper()
	if err := queue.Notify(context.Background(), e.rdb, queue.ChannelRouting); err != nil {
		e.t.Fatal(err)
	}
}

// replica is one registered replica: its server and its endpoint.
type upstream struct {
	srv  *httptest.Server
	slot store.ReplicaSlot
	ep   store.Endpoint
	hits atomic.Int64
}

// addReplica starts an upstream with h and registers it as a ready replica
// of ws/name serving model:version (slot, then endpoint, then the
// wake-up), as the controller and the worker do.
func (e *env) addReplica(ws, name, model string, version int, h http.HandlerFunc) *upstream {
	e.t.Helper()
	rp := &upstream{}
	rp.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rp.hits.Add(1)
		h(w, r)
	}))
	e.t.Cleanup(rp.srv.Close)
	n := e.n.Add(1)
	rp.slot = store.ReplicaSlot{ID: fmt.Sprintf("r%d", n), JobID: fmt.Sprintf("job-%d", n), Revision: 1, Model: model, Version: version}
	ctx := context.Background()
	if err := e.st.PutReplicaSlot(ctx, ws, name, rp.slot); err != nil {
		e.t.Fatal(err)
	}
	rp.ep = store.Endpoint{JobID: rp.slot.JobID, Attempt: 1, Workspace: ws, Deployment: name, Replica: rp.slot.ID,
		Worker: "w1", Address: rp.srv.Listener.Addr().String(), State: store.EndpointReady, Model: model, Version: version, Revision: 1}
	if err := e.st.PutEndpoint(ctx, rp.ep); err != nil {
		e.t.Fatal(err)
	}
	e.notify()
	return rp
}

// ready is how many ready replicas the router's table has for ws/name.
func (e *env) ready(ws, name string) int {
	tbl := e.r.table.Load()
	d := tbl.deps[depKey{ws, name}]
	if d == nil {
		return -1
	}
	n := len(d.others)
	for _, t := range d.targets {
		n += len(t.replicas)
	}
	return n
}

func (e *env) waitReady(ws, name string, n int) {
	e.t.Helper()
	testenv.Eventually(e.t, 5*time.Second, func() bool { return e.ready(ws, name) == n }, "router table: want %d ready replicas of %s/%s, have %d", n, ws, name, e.ready(ws, name))
}

// infer posts body to the router's infer route of name.
func (e *env) infer(token, path string, body []byte, h http.Header) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

func tgt(model string, version, weight int) api.DeploymentTarget {
	return api.DeploymentTarget{Ref: model + ":" + strconv.Itoa(version), Model: model, Version: version, Weight: weight}
}

// answer is a replica that answers with its name and a digest of the body.
func answer(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(b)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"model_name":%q,"served_by":%q,"body_sha256":%q,"auth":%q}`, r.PathValue("name"), name, hex.EncodeToString(sum[:]), r.Header.Get("Authorization"))
	}
}

type answered struct {
	ServedBy   string `json:"served_by"`
	BodySHA256 string `json:"body_sha256"`
	Auth       string `json:"auth"`
}

func decode(t *testing.T, b []byte) answered {
	t.Helper()
	var a answered
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return a
}

const inferPath = "/v2/models/iris/infer"

// TestLeastOutstanding: with one replica busy on a request, every other
// request goes to the idle one.
func TestLeastOutstanding(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	release := make(chan struct{})
	started := make(chan string, 1)
	blocking := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if string(b) == "block" {
				started <- name
				<-release
			}
			answer(name)(w, r.WithContext(r.Context()))
		}
	}
	e.addReplica("default", "iris", "iris", 1, blocking("a"))
	e.addReplica("default", "iris", "iris", 1, blocking("b"))
	e.waitReady("default", "iris", 2)

	done := make(chan struct{})
	go func() {
		defer close(done)
		e.infer(adminToken, inferPath, []byte("block"), nil)
	}()
	busy := <-started
	for i := range 20 {
		resp, b := e.infer(adminToken, inferPath, []byte("x"), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
		if got := decode(t, b).ServedBy; got == busy {
			t.Fatalf("request %d went to %s, which has a request outstanding; want the idle replica", i, busy)
		}
	}
	close(release)
	<-done
}

// TestTrafficSplit: a 90/10 split between two versions is served in that
// proportion (±5 points over 1,000 requests), and each answer says which
// version served it.
func TestTrafficSplit(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 90), tgt("iris", 2, 10))
	e.addReplica("default", "iris", "iris", 1, answer("v1"))
	e.addReplica("default", "iris", "iris", 2, answer("v2"))
	e.waitReady("default", "iris", 2)
	counts := map[string]int{}
	const n = 1000
	for range n {
		resp, b := e.infer(adminToken, inferPath, []byte("{}"), nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		v := resp.Header.Get(HeaderModelVersion)
		if want := map[string]string{"v1": "iris:1", "v2": "iris:2"}[decode(t, b).ServedBy]; v != want {
			t.Fatalf("%s: %q, want %q", HeaderModelVersion, v, want)
		}
		counts[v]++
	}
	if share := float64(counts["iris:1"]) * 100 / n; share < 85 || share > 95 {
		t.Fatalf("iris:1 served %.1f%% of %d requests (%v), want 90 ± 5", share, n, counts)
	}
}

// TestRetryOnDeadReplica: a replica that dies before answering (its
// connection dropped mid-request, or its listener gone) costs no failed
// request: the request goes once more, body and all, to another replica.
func TestRetryOnDeadReplica(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(*upstream)
		dead http.HandlerFunc
	}{
		{name: "connection dropped mid-request", dead: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.ReadAll(r.Body)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close() // as a SIGKILLed server: no response byte
			}
		}},
		{name: "listener closed", dead: answer("dead"), kill: func(rp *upstream) { rp.srv.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{})
			e.deploy("default", "iris", nil, tgt("iris", 1, 100))
			dead := e.addReplica("default", "iris", "iris", 1, tc.dead)
			e.addReplica("default", "iris", "iris", 1, answer("good"))
			e.waitReady("default", "iris", 2)
			if tc.kill != nil {
				tc.kill(dead)
			}
			body := make([]byte, 100<<10)
			rand.Read(body)
			sum := sha256.Sum256(body)
			for i := range 30 {
				resp, b := e.infer(adminToken, inferPath, body, nil)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
				}
				a := decode(t, b)
				if a.ServedBy != "good" || a.BodySHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("request %d: served by %s, body digest %s; want good with %x", i, a.ServedBy, a.BodySHA256, sum)
				}
			}
			retried := e.r.retried.Load()
			if retried == 0 {
				t.Fatal("no request went to the dead replica first: the test proves nothing")
			}
			t.Logf("%d of 30 requests retried", retried)
		})
	}
}

// TestNoReplicaIs503: a deployment without a ready replica (fixed replica
// count, so no hold) answers 503 with Retry-After in V2's error shape.
func TestNoReplicaIs503(t *testing.T) {
	e := newEnv(t, Config{})
	one := 1
	rec := store.DeploymentRecord{Workspace: "default", Spec: api.DeploymentSpec{Name: "iris", Replicas: &one}, Targets: []api.DeploymentTarget{tgt("iris", 1, 100)}}
	if err := e.st.PutDeployment(context.Background(), rec, true); err != nil {
		t.Fatal(err)
	}
	e.notify()
	e.waitReady("default", "iris", 0)
	resp, b := e.infer(adminToken, inferPath, []byte("{}"), nil)
	var eb struct{ Error string }
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || json.Unmarshal(b, &eb) != nil || eb.Error == "" {
		t.Fatalf("%d Retry-After %q %s; want 503 with Retry-After and {\"error\": ...}", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

// TestHoldThenServe: a request to a deployment scaled to zero is held —
// its load report says it waits, and the controller is woken — and served
// as soon as a replica becomes ready.
func TestHoldThenServe(t *testing.T) {
	e := newEnv(t, Config{ReportInterval: time.Hour}) // only the hold reports
	deployWake := e.rdb.Subscribe(context.Background(), queue.ChannelDeploy)
	defer deployWake.Close()
	if _, err := deployWake.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.deploy("default", "iris", &api.Autoscale{Min: 0, Max: 2})
	e.waitReady("default", "iris", 0)
	// The deployment's target as the API resolves it.
	rec, _, _ := e.st.Deployment(context.Background(), "default", "iris")
	rec.Targets = []api.DeploymentTarget{tgt("iris", 1, 100)}
	if err := e.st.PutDeployment(context.Background(), *rec, false); err != nil {
		t.Fatal(err)
	}
	e.notify()

	type result struct {
		code int
		body []byte
	}
	res := make(chan result, 1)
	go func() {
		resp, b := e.infer(adminToken, inferPath, []byte("{}"), nil)
		res <- result{resp.StatusCode, b}
	}()
	select {
	case <-deployWake.Channel():
	case r := <-res:
		t.Fatalf("answered before a replica existed: %d %s", r.code, r.body)
	case <-time.After(10 * time.Second):
		t.Fatal("the hold did not wake the controller")
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		loads, err := e.st.Loads(context.Background(), "default", "iris", time.Now(), time.Minute)
		return err == nil && len(loads) == 1 && loads[0].Waiting == 1 && loads[0].InFlight >= 1
	}, "no load report with the held request")
	e.addReplica("default", "iris", "iris", 1, answer("cold"))
	r := <-res
	if r.code != http.StatusOK || decode(t, r.body).ServedBy != "cold" {
		t.Fatalf("held request: %d %s; want 200 from the new replica", r.code, r.body)
	}
}

// TestHoldTimeout: with no replica ready within the hold time, a held
// request gets 503 with Retry-After.
func TestHoldTimeout(t *testing.T) {
	e := newEnv(t, Config{HoldTimeout: 50 * time.Millisecond})
	e.deploy("default", "iris", &api.Autoscale{Min: 0, Max: 2}, tgt("iris", 1, 100))
	e.waitReady("default", "iris", 0)
	resp, b := e.infer(adminToken, inferPath, []byte("{}"), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s; want 503 with Retry-After", resp.StatusCode, b)
	}
}

// TestBinaryBodyByteForByte: the binary tensor extension passes through
// untouched, Inference-Header-Content-Length both ways included; the
// client's token is not passed on.
func TestBinaryBodyByteForByte(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	header := []byte(`{"inputs":[{"name":"input","datatype":"FP32","shape":[2,4],"parameters":{"binary_data_size":32}}]}`)
	raw := make([]byte, 32)
	rand.Read(raw)
	raw[0], raw[5] = 0, 0
	reqBody := append(append([]byte{}, header...), raw...)
	respRaw := make([]byte, 4096)
	rand.Read(respRaw)
	respHeader := []byte(`{"model_name":"iris","outputs":[{"name":"label","datatype":"INT64","shape":[512],"parameters":{"binary_data_size":4096}}]}`)
	respBody := append(append([]byte{}, respHeader...), respRaw...)
	var gotBody []byte
	var gotIHCL, gotAuth, gotCT string
	e.addReplica("default", "iris", "iris", 1, func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotIHCL, gotAuth, gotCT = r.Header.Get("Inference-Header-Content-Length"), r.Header.Get("Authorization"), r.Header.Get("Content-Type")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Inference-Header-Content-Length", strconv.Itoa(len(respHeader)))
		w.Write(respBody)
	})
	e.waitReady("default", "iris", 1)
	resp, b := e.infer(adminToken, inferPath, reqBody, http.Header{
		"Inference-Header-Content-Length": {strconv.Itoa(len(header))}, "Content-Type": {"application/octet-stream"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if !bytes.Equal(gotBody, reqBody) || gotIHCL != strconv.Itoa(len(header)) || gotCT != "application/octet-stream" {
		t.Fatalf("replica got %d bytes (equal %v), Inference-Header-Content-Length %q, Content-Type %q", len(gotBody), bytes.Equal(gotBody, reqBody), gotIHCL, gotCT)
	}
	if gotAuth != "" {
		t.Fatalf("the client's token reached the replica: %q", gotAuth)
	}
	if !bytes.Equal(b, respBody) || resp.Header.Get("Inference-Header-Content-Length") != strconv.Itoa(len(respHeader)) {
		t.Fatalf("client got %d bytes (equal %v), Inference-Header-Content-Length %q", len(b), bytes.Equal(b, respBody), resp.Header.Get("Inference-Header-Content-Length"))
	}
}

// TestDeadline504: a request whose Jobgate-Deadline-Ms passes before the
// replica answers gets 504 in V2's shape.
func TestDeadline504(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	stop := make(chan struct{})
	defer close(stop)
	e.addReplica("default", "iris", "iris", 1, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	e.waitReady("default", "iris", 1)
	resp, b := e.infer(adminToken, inferPath, []byte("{}"), http.Header{HeaderDeadline: {"100"}})
	var eb struct{ Error string }
	if resp.StatusCode != http.StatusGatewayTimeout || json.Unmarshal(b, &eb) != nil || !strings.Contains(eb.Error, "deadline") {
		t.Fatalf("%d %s; want 504 {\"error\": \"...deadline...\"}", resp.StatusCode, b)
	}
	resp, b = e.infer(adminToken, inferPath, []byte("{}"), http.Header{HeaderDeadline: {"soon"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("deadline %q: %d %s; want 400", "soon", resp.StatusCode, b)
	}
}

// TestAuth: no token 401, a token without the score scope 403, another
// workspace's deployment 404; a score token of the workspace is served.
func TestAuth(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("team-a", "iris", nil, tgt("iris", 1, 100))
	e.addReplica("team-a", "iris", "iris", 1, answer("a"))
	e.waitReady("team-a", "iris", 1)
	ctx := context.Background()
	mk := func(ws string, scopes ...api.Scope) string {
		secret := "jgt_" + ws + strconv.Itoa(len(scopes)) + string(scopes[0])
		if err := e.st.CreateToken(ctx, api.Token{ID: "tok-" + secret, Workspace: ws, Name: secret, Scopes: scopes}, secret); err != nil {
			t.Fatal(err)
		}
		return secret
	}
	past := time.Now().Add(-time.Minute)
	expired := "jgt_expired"
	if err := e.st.CreateToken(ctx, api.Token{ID: "tok-exp", Workspace: "team-a", Name: "exp", Scopes: []api.Scope{api.ScopeScore}, ExpiresAt: &past}, expired); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"unknown token", "jgt_nope", http.StatusUnauthorized},
		{"expired token", expired, http.StatusUnauthorized},
		{"read scope only", mk("team-a", api.ScopeRead, api.ScopeSubmit), http.StatusForbidden},
		{"other workspace", mk("team-b", api.ScopeScore), http.StatusNotFound},
		{"system admin (workspace default)", adminToken, http.StatusNotFound},
		{"score scope", mk("team-a", api.ScopeScore), http.StatusOK},
		{"admin scope", mk("team-a", api.ScopeAdmin), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.infer(tc.token, inferPath, []byte("{}"), nil)
			var eb struct{ Error string }
			if resp.StatusCode != tc.want || (tc.want != http.StatusOK && (json.Unmarshal(b, &eb) != nil || eb.Error == "")) {
				t.Fatalf("%d %s; want %d (errors as {\"error\": ...})", resp.StatusCode, b, tc.want)
			}
		})
	}
}

// TestTableRefreshOnWakeUp: the table follows the replicas on each
// ChannelRouting message (its timer is an hour here): a draining slot's
// replica gets no more requests, a removed endpoint neither.
func TestTableRefreshOnWakeUp(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	a := e.addReplica("default", "iris", "iris", 1, answer("a"))
	e.addReplica("default", "iris", "iris", 1, answer("b"))
	e.waitReady("default", "iris", 2)
	a.slot.Draining = true
	if err := e.st.PutReplicaSlot(context.Background(), "default", "iris", a.slot); err != nil {
		t.Fatal(err)
	}
	e.notify()
	e.waitReady("default", "iris", 1)
	for range 20 {
		if _, b := e.infer(adminToken, inferPath, []byte("{}"), nil); decode(t, b).ServedBy != "b" {
			t.Fatalf("a draining replica got a request: %s", b)
		}
	}
}

// TestRoutesAndHealth: health needs no token; the table answers model
// readiness and, without a ready replica, metadata; unknown paths and
// methods are V2 errors.
func TestRoutesAndHealth(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	e.waitReady("default", "iris", 0)
	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path, token string
		want        int
		has         string
	}{
		{"/v2/health/live", "", 200, `"live":true`},
		{"/v2/health/ready", "", 200, `"ready":true`},
		{"/v2/models/iris", "", 401, `"error"`},
		{"/v2/models/iris", adminToken, 200, `"versions":["1"]`},
		{"/v2/models/iris/ready", adminToken, 503, `"error"`},
		{"/v2/models/iris/versions/7", adminToken, 404, `"error"`},
		{"/v2/models/nope", adminToken, 404, `"error"`},
		{"/v2/models/iris/infer", adminToken, 405, `"error"`},
		{"/v2/elsewhere", adminToken, 404, `"error"`},
	} {
		if code, b := get(tc.path, tc.token); code != tc.want || !strings.Contains(b, tc.has) {
			t.Errorf("GET %s: %d %s; want %d with %s", tc.path, code, b, tc.want, tc.has)
		}
	}
	e.addReplica("default", "iris", "iris", 1, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"name":"iris","versions":["1"],"platform":"modelserver"}`))
	})
	e.waitReady("default", "iris", 1)
	if code, b := get("/v2/models/iris", adminToken); code != 200 || !strings.Contains(b, `"platform":"modelserver"`) {
		t.Errorf("metadata with a ready replica: %d %s; want the replica's", code, b)
	}
	if code, b := get("/v2/models/iris/versions/1/ready", adminToken); code != 200 || !strings.Contains(b, `"ready":true`) {
		t.Errorf("ready with a ready replica: %d %s", code, b)
	}
}

// TestTokenLookupsCached: many requests with one token cost about one
// token lookup per second, not one each.
func TestTokenLookupsCached(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("team-a", "iris", nil, tgt("iris", 1, 100))
	e.addReplica("team-a", "iris", "iris", 1, answer("a"))
	e.waitReady("team-a", "iris", 1)
	secret := "jgt_hot"
	if err := e.st.CreateToken(context.Background(), api.Token{ID: "hot", Workspace: "team-a", Name: "hot", Scopes: []api.Scope{api.ScopeScore}}, secret); err != nil {
		t.Fatal(err)
	}
	calls := testenv.CountCalls(e.rdb)
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if resp, b := e.infer(secret, inferPath, []byte("{}"), nil); resp.StatusCode != 200 {
					t.Errorf("%d %s", resp.StatusCode, b)
				}
			}
		})
	}
	wg.Wait()
	// A lookup per TTL (1s) at most, however long the requests took.
	allowed := int(time.Since(start)/time.Second) + 2
	if n := calls.TripsTouching("{jobgate}:token:" + store.HashToken(secret)); n > allowed {
		t.Fatalf("200 requests read the token %d times; want at most %d (one per second)", n, allowed)
	}
}

// rawRequest writes an infer request's head (with contentLength) and
// partial of its body on a connection of its own, and returns the
// connection, its response read with read.
func (e *env) rawRequest(contentLength int, partial []byte, h http.Header) net.Conn {
	e.t.Helper()
	c, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: router\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n", inferPath, adminToken, contentLength)
	for k, v := range h {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v[0])
	}
	head.WriteString("\r\n")
	if _, err := c.Write(append([]byte(head.String()), partial...)); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestSlowBodyBoundedByDeadline: a client that never sends the body it
// announced is answered 504 by its deadline, not held forever.
func TestSlowBodyBoundedByDeadline(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	e.addReplica("default", "iris", "iris", 1, answer("a"))
	e.waitReady("default", "iris", 1)
	c := e.rawRequest(1000, []byte("{}"), http.Header{HeaderDeadline: {"200"}})
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a request whose body never came: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
}

// TestBufferedBodiesBounded: the bodies the router holds at once are
// bounded; memory is taken as a body arrives, not on the word of its
// Content-Length; past the bound a request is answered 503 with
// Retry-After, and the memory is given back when a request ends.
func TestBufferedBodiesBounded(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 1 << 20, MaxBufferedBytes: 1 << 20})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	e.addReplica("default", "iris", "iris", 1, answer("a"))
	e.waitReady("default", "iris", 1)

	// Announced 1 MiB, nothing sent: nothing taken.
	idle := e.rawRequest(1<<20, nil, nil)
	testenv.Eventually(t, 5*time.Second, func() bool { return inFlight(e.r, "default", "iris") == 1 }, "the idle request never arrived")
	if got := e.r.buffered.Load(); got != 0 {
		t.Fatalf("%d bytes taken for a body not sent yet, want 0", got)
	}
	// 900 KiB of 1000 sent, then it stalls: the bound is nearly used.
	slow := e.rawRequest(1000<<10, bytes.Repeat([]byte("x"), 900<<10), nil)
	testenv.Eventually(t, 5*time.Second, func() bool { return e.r.buffered.Load() >= 900<<10 }, "the slow body was never taken in (%d bytes)", e.r.buffered.Load())
	resp, b := e.infer(adminToken, inferPath, bytes.Repeat([]byte("y"), 100<<10), nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a body past the bound: %d %s (Retry-After %q), want 503 with Retry-After", resp.StatusCode, b, resp.Header.Get("Retry-After"))
	}
	idle.Close()
	slow.Close()
	testenv.Eventually(t, 5*time.Second, func() bool { return e.r.buffered.Load() == 0 }, "%d bytes still taken after the requests ended", e.r.buffered.Load())
	resp, b = e.infer(adminToken, inferPath, bytes.Repeat([]byte("y"), 100<<10), nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the bodies were given back: %d %s, want 200", resp.StatusCode, b)
	}
}

// TestReplicaHeadersBounded: a replica (a job's code) that answers with
// huge headers gets a 502, not its headers passed on.
func TestReplicaHeadersBounded(t *testing.T) {
	e := newEnv(t, Config{})
	e.deploy("default", "iris", nil, tgt("iris", 1, 100))
	big := strings.Repeat("z", 64<<10)
	e.addReplica("default", "iris", "iris", 1, func(w http.ResponseWriter, r *http.Request) {
		for i := range 40 {
			w.Header().Set(fmt.Sprintf("X-Big-%d", i), big)
		}
		w.WriteHeader(http.StatusOK)
	})
	e.waitReady("default", "iris", 1)
	resp, b := e.infer(adminToken, inferPath, []byte("{}"), nil)
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a replica's 2.5 MiB of headers: %d (%d header bytes passed on) %.100s, want 502", resp.StatusCode, len(resp.Header)*len(big), b)
	}
}

// inFlight is the requests of ws/name the router has in flight now.
func inFlight(r *Router, ws, name string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.stats[depKey{ws, name}]; s != nil {
		return s.inFlight.Load()
	}
	return 0
}
