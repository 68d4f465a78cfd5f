package gateway

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"
	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/openapicheck"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite the generated schemas of api/openapi.yaml from the Go types")

const openAPIFile = "../api/openapi.yaml"

// The generated part of api/openapi.yaml, the entries of components.schemas.
const (
	openAPIBegin = "    # BEGIN GENERATED SCHEMAS (go test ./gateway -run TestOpenAPISchemas -update-openapi)\n"
	openAPIEnd   = "    # END GENERATED SCHEMAS\n"
)

// openAPISchemaTypes are the bodies the API reads and writes, by their name
// in components.schemas: every request a handler decodes (the gateway's own
// request types too) and every answer it encodes. A body type a handler
// starts to use is added here, then referred to from the paths.
var openAPISchemaTypes = map[string]any{
	// requests
	"JobSpec":          api.JobSpec{},
	"ExecRequest":      api.ExecRequest{},
	"MetricsInput":     api.MetricsInput{},
	"ParamsInput":      api.ParamsInput{},
	"TagsInput":        api.TagsInput{},
	"ModelRegister":    api.ModelRegister{},
	"ModelAliasSet":    api.ModelAliasSet{},
	"DeploymentSpec":   api.DeploymentSpec{},
	"DeploymentPatch":  api.DeploymentPatch{},
	"BatchRequest":     api.BatchRequest{},
	"SweepSpec":        api.SweepSpec{},
	"WorkspacePatch":   workspacePatch{},
	"TokenRequest":     tokenRequest{},
	"SecretRequest":    secretRequest{},
	"DatastoreRequest": datastoreRequest{},
	"TriggerRequest":   triggerRequest{},
	"TriggerPatch":     api.TriggerPatch{},
	"ScheduleRequest":  scheduleRequest{},
	"SchedulePatch":    api.SchedulePatch{},
	// answers
	"ErrorBody":       api.ErrorBody{},
	"Health":          api.Health{},
	"JobDetail":       api.JobDetail{},
	"JobList":         api.JobList{},
	"WorkerList":      api.WorkerList{},
	"ArtifactList":    api.ArtifactList{},
	"JobMetrics":      api.JobMetrics{},
	"MetricsRecorded": api.MetricsRecorded{},
	"ExperimentList":  api.ExperimentList{},
	"ExperimentJobs":  api.ExperimentJobs{},
	"ExecLine":        api.ExecLine{},
	"Model":           api.Model{},
	"ModelList":       api.ModelList{},
	"ModelVersion":    api.ModelVersion{},
	"ModelAlias":      api.ModelAlias{},
	"Deployment":      api.Deployment{},
	"DeploymentList":  api.DeploymentList{},
	"BatchAccepted":   api.BatchAccepted{},
	"Batch":           api.Batch{},
	"BatchRowError":   api.BatchRowError{},
	"Workspace":       api.Workspace{},
	"WorkspaceList":   api.WorkspaceList{},
	"NewToken":        api.NewToken{},
	"TokenList":       api.TokenList{},
	"SecretName":      api.SecretName{},
	"SecretList":      api.SecretList{},
	"AuditPage":       api.AuditPage{},
	"Datastore":       api.Datastore{},
	"DatastoreList":   api.DatastoreList{},
	"Trigger":         api.Trigger{},
	"TriggerList":     api.TriggerList{},
	"DeliveryList":    api.DeliveryList{},
	"HookResult":      api.HookResult{},
	"Schedule":        api.Schedule{},
	"ScheduleList":    api.ScheduleList{},
	"ScheduleHistory": api.ScheduleHistory{},
	"Queue":           api.Queue{},
	"Sweep":           api.Sweep{},
	"SweepTrials":     api.SweepTrials{},
	"SweepList":       api.SweepList{},
}

// openAPIRawJob names the fields that hold a job spec as raw JSON (the
// gateway reads them with decodeSpec later): their schema is JobSpec's.
var openAPIRawJob = map[string]bool{"ScheduleRequest.job": true, "TriggerRequest.job": true}

// generateOpenAPISchemas renders components.schemas from the Go types, as
// the lines between the markers. Every object is closed
// (additionalProperties: false): the gateway decodes strictly, and encodes
// only the fields of its types. Pointers, slices and maps may be null.
func generateOpenAPISchemas(t *testing.T) []byte {
	t.Helper()
	customize := func(name string, ty reflect.Type, tag reflect.StructTag, s *openapi3.Schema) error {
		if s.Nullable || ty.Kind() == reflect.Map || (ty.Kind() == reflect.Slice && ty.Elem().Kind() != reflect.Uint8) {
			s.Nullable = false
			if s.Type == nil {
				s.Type = &openapi3.Types{}
			}
			if len(*s.Type) > 0 && !s.Type.Includes(openapi3.TypeNull) {
				s.Type.With(openapi3.TypeNull)
			}
		}
		// The error codes are a closed set: the document lists it.
		if ty == reflect.TypeFor[api.Code]() {
			for _, code := range api.Codes() {
				s.Enum = append(s.Enum, string(code))
			}
		}
		if ty.Kind() == reflect.Struct && s.Properties != nil {
			no := false
			s.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
		}
		return nil
	}
	schemas := openapi3.Schemas{}
	names := make([]string, 0, len(openAPISchemaTypes))
	for name := range openAPISchemaTypes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ref, err := openapi3gen.NewSchemaRefForValue(openAPISchemaTypes[name], nil, openapi3gen.SchemaCustomizer(customize))
		if err != nil {
			t.Fatalf("schema of %s: %v", name, err)
		}
		for field := range ref.Value.Properties {
			if openAPIRawJob[name+"."+field] {
				ref.Value.Properties[field] = openapi3.NewSchemaRef("#/components/schemas/JobSpec", nil)
			}
		}
		schemas[name] = openapi3.NewSchemaRef("", ref.Value)
	}
	// JSON first (kin-openapi's marshalling), then YAML, indented under
	// components.schemas.
	js, err := json.Marshal(schemas)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.JSONToYAML(js)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(ys), "\n") {
		if line != "" {
			out.WriteString("    " + line)
		}
	}
	return out.Bytes()
}

// TestOpenAPISchemas: the generated schemas of api/openapi.yaml are what
// the Go types make (-update-openapi rewrites them), and the document is
// a valid OpenAPI 3.1 document whose references all resolve.
func TestOpenAPISchemas(t *testing.T) {
	doc, err := os.ReadFile(openAPIFile)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := bytes.Index(doc, []byte(openAPIBegin)), bytes.Index(doc, []byte(openAPIEnd))
	if begin < 0 || end < begin {
		t.Fatalf("%s has no %q ... %q section", openAPIFile, strings.TrimSpace(openAPIBegin), strings.TrimSpace(openAPIEnd))
	}
	have := doc[begin+len(openAPIBegin) : end]
	want := generateOpenAPISchemas(t)
	if !bytes.Equal(have, want) {
		if !*updateOpenAPI {
			t.Fatalf("%s: the generated schemas are stale; run go test ./gateway -run TestOpenAPISchemas -update-openapi", openAPIFile)
		}
		doc = slices.Concat(doc[:begin+len(openAPIBegin)], want, doc[end:])
		if err := os.WriteFile(openAPIFile, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loader := openapi3.NewLoader()
	spec, err := loader.LoadFromData(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", openAPIFile, err)
	}
	if !spec.IsOpenAPI31OrLater() {
		t.Fatalf("%s is OpenAPI %s, want 3.1", openAPIFile, spec.OpenAPI)
	}
}

// checked is g's handler behind the OpenAPI check: a request or answer of
// /v1 or /hooks that the document does not describe fails t.
func checked(t testing.TB, g *Gateway) http.Handler {
	t.Helper()
	chk, err := openapicheck.New(t)
	if err != nil {
		t.Fatal(err)
	}
	return chk.Wrap(g.Handler())
}

// openAPIPending are operations in the document whose handlers other work
// in progress adds (issue 16); each leaves this list with its route.
var openAPIPending = map[string]bool{}

// TestOpenAPIRoutes: every route the gateway serves under /v1 and /hooks
// (and the probes) is in the OpenAPI document, and every operation of the
// document is a route (but the pending ones).
func TestOpenAPIRoutes(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	g, _ := newGateway(t, Config{AdminToken: systemToken, MetricsGatherer: prometheus.NewRegistry()}, control.Config{}, rdb, store.New(rdb, store.Config{}), nil, nil)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPIYAML())
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	served := map[string]bool{}
	for _, r := range g.echo.Routes() {
		if !openapicheck.Checked(r.Path) && r.Path != "/healthz" && r.Path != "/readyz" && r.Path != "/metrics" {
			continue
		}
		// Echo's :name is OpenAPI's {name}; the artifact path's * is {path}.
		path := strings.Replace(param.ReplaceAllString(r.Path, "{$1}"), "*", "{path}", 1)
		served[r.Method+" "+path] = true
	}
	if !served["GET /v1/jobs/{id}"] {
		t.Fatalf("the gateway's routes read as %v: the test no longer sees them", served)
	}
	for op := range served {
		if !documented[op] {
			t.Errorf("%s is served but not in api/openapi.yaml: add it under paths", op)
		}
	}
	for op := range documented {
		if !served[op] && !openAPIPending[op] {
			t.Errorf("%s is in api/openapi.yaml but the gateway does not serve it", op)
		}
	}
}

// TestOpenAPIServed: /v1/openapi.json and .yaml answer without a token, the
// JSON is the document, and the ETag answers a revalidation with a 304.
func TestOpenAPIServed(t *testing.T) {
	f := newFixture(t)
	for _, tt := range []struct{ path, ctype string }{{"/v1/openapi.json", "application/json"}, {"/v1/openapi.yaml", "application/yaml"}} {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(f.ts.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			etag := resp.Header.Get("ETag")
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) || etag == "" || resp.Header.Get("Cache-Control") == "" {
				t.Fatalf("%d, Content-Type %q, ETag %q, Cache-Control %q; want 200 %s with an ETag and a Cache-Control",
					resp.StatusCode, resp.Header.Get("Content-Type"), etag, resp.Header.Get("Cache-Control"), tt.ctype)
			}
			doc, err := openapi3.NewLoader().LoadFromData(body)
			if err != nil || doc.OpenAPI != "3.1.0" || doc.Paths.Find("/v1/jobs/{id}") == nil {
				t.Fatalf("the document served does not load as the API's: %v", err)
			}
			req, _ := http.NewRequest(http.MethodGet, f.ts.URL+tt.path, nil)
			req.Header.Set("If-None-Match", etag)
			resp, err = http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotModified {
				t.Fatalf("revalidated with its ETag: %d, want 304", resp.StatusCode)
			}
		})
	}
}
