package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/gateway"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/scoring"
)

// TestTryItAndTraffic: with the scoring router in process, as `jobgate
// dev` wires it, POST /v1/deployments/:name/infer passes a body to the
// deployment's replica and its answer back; the router's requests show as
// the deployment's traffic on GET /v1/deployments/:name, which has none
// before. A body over the gateway's cap is a 413 in the REST API's shape.
func TestTryItAndTraffic(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"path":"` + r.URL.Path + `","echo":` + string(b) + `}`))
	}))
	defer upstream.Close()
	rec := store.DeploymentRecord{Workspace: "default", Spec: api.DeploymentSpec{Name: "iris"}, Revision: 1,
		Targets: []api.DeploymentTarget{{Ref: "iris:1", Model: "iris", Version: 1, Weight: 100}}}
	if err := st.PutDeployment(ctx, rec, true); err != nil {
		t.Fatal(err)
	}
	if err := st.PutReplicaSlot(ctx, "default", "iris", store.ReplicaSlot{ID: "r1", JobID: "job-1", Model: "iris", Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutEndpoint(ctx, store.Endpoint{JobID: "job-1", Attempt: 1, Workspace: "default", Deployment: "iris", Replica: "r1",
		Address: upstream.Listener.Addr().String(), State: store.EndpointReady, Model: "iris", Version: 1}); err != nil {
		t.Fatal(err)
	}

	const token = "tryit-e2e-admin-token"
	router, err := scoring.New(scoring.Config{AdminToken: token}, rdb, st, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer router.Close()
	routerDone := make(chan error, 1)
	go func() { routerDone <- router.Run(ctx) }()
	defer func() { cancel(); <-routerDone }()
	testenv.Eventually(t, 10*time.Second, router.Ready, "the scoring router never loaded its table")

	plane, err := control.New(control.Config{}, rdb, st, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{AdminToken: token, Scoring: router, MaxBodyBytes: 4 << 10}, rdb, st,
		artifact.Dir{Root: t.TempDir()}, nil, plane, logger)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	defer srv.Close()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deployment := func() map[string]json.RawMessage {
		t.Helper()
		code, body := call("GET", "/v1/deployments/iris", "")
		var d map[string]json.RawMessage
		if code != http.StatusOK || json.Unmarshal([]byte(body), &d) != nil {
			t.Fatalf("GET /v1/deployments/iris: %d %s", code, body)
		}
		return d
	}

	if d := deployment(); d["traffic"] != nil {
		t.Fatalf("a deployment that served nothing has traffic: %s", d["traffic"])
	}
	const requests = 5
	for range requests {
		code, body := call("POST", "/v1/deployments/iris/infer", `{"inputs":[1]}`)
		if code != http.StatusOK || !strings.Contains(body, `"echo":{"inputs":[1]}`) || !strings.Contains(body, `"path":"/v2/models/iris/infer"`) {
			t.Fatalf("try it: %d %s; want the replica's answer", code, body)
		}
	}
	if code, body := call("POST", "/v1/deployments/nope/infer", `{}`); code != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("try it on no deployment: %d %s; want a 404", code, body)
	}
	if code, body := call("POST", "/v1/deployments/iris/infer", `{"inputs":"`+strings.Repeat("x", 8<<10)+`"}`); code != http.StatusRequestEntityTooLarge || !strings.Contains(body, `"request_too_large"`) {
		t.Fatalf("try it with 8 KiB over a 4 KiB cap: %d %s; want 413", code, body)
	}

	// The router writes its counts once a second.
	var tr api.DeploymentTraffic
	testenv.Eventually(t, 10*time.Second, func() bool {
		raw := deployment()["traffic"]
		return raw != nil && json.Unmarshal(raw, &tr) == nil && tr.Requests == requests
	}, "the deployment's traffic never showed %d requests: %+v", requests, tr)
	if tr.Errors != 0 || tr.ByTarget["1"] != requests || tr.WindowSeconds != 60 || tr.RatePerSecond <= 0 || tr.P50Ms <= 0 || tr.P99Ms < tr.P50Ms {
		t.Fatalf("traffic %+v; want %d requests by version 1, no errors, a rate and percentiles", tr, requests)
	}
	code, body := call("GET", "/v1/deployments", "")
	if code != http.StatusOK || !strings.Contains(body, `"traffic":{`) {
		t.Fatalf("GET /v1/deployments: %d %s; want the traffic in the list too", code, body)
	}
}
