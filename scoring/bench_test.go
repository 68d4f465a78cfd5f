package scoring

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// benchStore is a fixed table: one deployment with one replica (the
// benchmark measures the router, not Redis).
type benchStore struct{ addr string }

func (b benchStore) DeploymentNames(context.Context, string) ([][2]string, error) {
	return [][2]string{{"default", "iris"}}, nil
}

func (b benchStore) Deployment(context.Context, string, string) (*store.DeploymentRecord, store.DeploymentState, error) {
	return &store.DeploymentRecord{Workspace: "default", Spec: api.DeploymentSpec{Name: "iris"},
		Targets: []api.DeploymentTarget{{Model: "iris", Version: 1, Weight: 100}}}, store.DeploymentState{}, nil
}

func (b benchStore) ReplicaSlots(context.Context, string, string) ([]store.ReplicaSlot, error) {
	return []store.ReplicaSlot{{ID: "r1", JobID: "job-1"}}, nil
}

func (b benchStore) Endpoints(context.Context, ...string) ([]store.Endpoint, error) {
	return []store.Endpoint{{JobID: "job-1", Attempt: 1, Workspace: "default", Deployment: "iris", Address: b.addr,
		State: store.EndpointReady, Model: "iris", Version: 1}}, nil
}

func (b benchStore) ReportLoad(context.Context, string, string, string, store.RouterLoad) error {
	return nil
}

var benchBody = []byte(`{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[5.1,3.5,1.4,0.2]}]}`)

// benchUpstream answers like the example model server, at once.
func benchUpstream() *httptest.Server {
	resp := []byte(`{"model_name":"iris","model_version":"1","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]}]}`)
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(resp)
	}))
}

func benchPost(b *testing.B, hc *http.Client, url, token string) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(benchBody))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkRouterDirect calls the upstream directly; BenchmarkRouterProxied
// calls it through the router (auth, table, choice, proxy; tracing off).
// The difference per op is the router's added latency; -cpu and
// RunParallel give the concurrency.
//
//	go test ./scoring -run '^$' -bench 'BenchmarkRouter' -benchtime 5s
func BenchmarkRouterDirect(b *testing.B) {
	up := benchUpstream()
	defer up.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchPost(b, hc, up.URL+"/v2/models/iris/infer", "")
		}
	})
}

func BenchmarkRouterProxied(b *testing.B) {
	up := benchUpstream()
	defer up.Close()
	r, err := newRouter(Config{AdminToken: adminToken}, nil, benchStore{addr: up.Listener.Addr().String()}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	if err := r.reload(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	front := httptest.NewServer(r)
	defer front.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			benchPost(b, hc, front.URL+"/v2/models/iris/infer", adminToken)
		}
	})
}
