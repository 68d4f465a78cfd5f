package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// TestParseDeploymentSpec: `jobgate deploy -f` reads YAML and JSON alike,
// strictly.
func TestParseDeploymentSpec(t *testing.T) {
	two := 2
	want := api.DeploymentSpec{Name: "iris", Model: "iris@production", Image: "localhost/jobgate-examples:latest",
		Command: []string{"/bin/modelserver"}, Env: map[string]string{"LOG": "on"}, Replicas: &two}
	yml := `name: iris
model: iris@production
image: localhost/jobgate-examples:latest
command: [/bin/modelserver]
env:
  LOG: "on"
replicas: 2
`
	jsn := `{"name":"iris","model":"iris@production","image":"localhost/jobgate-examples:latest","command":["/bin/modelserver"],"env":{"LOG":"on"},"replicas":2}`
	for name, in := range map[string]string{"yaml": yml, "json": jsn} {
		got, err := parseDeploymentSpec([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	auto, err := parseDeploymentSpec([]byte("name: a\nmodel: iris:1\nimage: localhost/x:1\ncommand: [x]\nautoscale: {min: 0, max: 4, target_concurrency: 8, scale_down_delay_seconds: 120}\n"))
	if err != nil || auto.Autoscale == nil || auto.Autoscale.Max != 4 || auto.Autoscale.ScaleDownDelaySeconds != 120 {
		t.Fatalf("autoscale: %+v, %v", auto.Autoscale, err)
	}
	if _, err := parseDeploymentSpec([]byte("name: iris\nreplica: 2\n")); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("unknown field: %v, want an error naming it", err)
	}
}

// TestDeployExistingReplacesEnv: `jobgate deploy -f` of a spec whose
// deployment exists re-sends it as a PATCH; the spec replaces the
// deployment's own, so a spec with no env clears the env it had (a PATCH
// that leaves env out keeps it).
func TestDeployExistingReplacesEnv(t *testing.T) {
	var patches []map[string]json.RawMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/deployments":
			writeErr(w, http.StatusConflict, string(api.CodeConflict), `deployment "iris" exists`)
		case "GET /v1/deployments/iris":
			writeResp(w, http.StatusOK, api.Deployment{Name: "iris", Revision: 1, Spec: api.DeploymentSpec{Name: "iris", Model: "iris:1",
				Image: "localhost/jobgate-examples:latest", Command: []string{"/bin/modelserver"}, Env: map[string]string{"LOG": "on"}}})
		case "PATCH /v1/deployments/iris":
			var p map[string]json.RawMessage
			if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
				t.Error(err)
			}
			patches = append(patches, p)
			writeResp(w, http.StatusOK, api.Deployment{Name: "iris", Revision: 2, Status: api.DeploymentDeploying})
		default:
			writeErr(w, http.StatusNotFound, "not_found", r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	spec := "name: iris\nmodel: iris:2\nimage: localhost/jobgate-examples:latest\ncommand: [/bin/modelserver]\nreplicas: 2\n"
	file := filepath.Join(t.TempDir(), "dep.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCLI(t, envFor(srv.URL), "", "deploy", "-f", file); r.err != nil {
		t.Fatalf("deploy: %v\n%s", r.err, r.stderr)
	}
	if len(patches) != 1 {
		t.Fatalf("%d PATCHes, want 1", len(patches))
	}
	var env map[string]string
	if raw, ok := patches[0]["env"]; !ok || json.Unmarshal(raw, &env) != nil || env == nil || len(env) != 0 {
		b, _ := json.Marshal(patches[0])
		t.Fatalf("PATCH %s: want env {} (the spec has none, so the deployment's goes)", b)
	}
}

// TestDeployExistingRefusesUnpatchable: a spec re-sent to a deployment
// that exists cannot change what a PATCH does not carry (priority,
// readiness_path): deploy says so instead of leaving them as they were.
func TestDeployExistingRefusesUnpatchable(t *testing.T) {
	patched := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method + " " + r.URL.Path {
		case "POST /v1/deployments":
			writeErr(w, http.StatusConflict, string(api.CodeConflict), `deployment "iris" exists`)
		case "GET /v1/deployments/iris":
			writeResp(w, http.StatusOK, api.Deployment{Name: "iris", Revision: 1, Spec: api.DeploymentSpec{Name: "iris", Model: "iris:1",
				Image: "localhost/jobgate-examples:latest", Command: []string{"/bin/modelserver"}}})
		case "PATCH /v1/deployments/iris":
			patched++
			writeResp(w, http.StatusOK, api.Deployment{Name: "iris", Revision: 2, Status: api.DeploymentDeploying})
		default:
			writeErr(w, http.StatusNotFound, "not_found", r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	base := "name: iris\nmodel: iris:2\nimage: localhost/jobgate-examples:latest\ncommand: [/bin/modelserver]\n"
	for _, tc := range []struct{ extra, want string }{
		{"", ""},
		{"priority: high\nreadiness_path: /v2/health/ready\n", ""}, // the defaults: no change
		{"priority: low\n", "priority"},
		{"readiness_path: /ready\n", "readiness_path"},
	} {
		patched = 0
		file := filepath.Join(t.TempDir(), "dep.yaml")
		if err := os.WriteFile(file, []byte(base+tc.extra), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runCLI(t, envFor(srv.URL), "", "deploy", "-f", file)
		switch {
		case tc.want == "" && (r.err != nil || patched != 1):
			t.Errorf("spec +%q: %v, %d PATCHes; want one", tc.extra, r.err, patched)
		case tc.want != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.want) || patched != 0):
			t.Errorf("spec +%q: %v, %d PATCHes; want an error naming %s and no PATCH", tc.extra, r.err, patched, tc.want)
		}
	}
}
