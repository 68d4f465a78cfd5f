package gateway

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/queue"
)

// TestErrorRenderers: every api.Code renders with its one status, and its
// own code, in each surface's renderer; MLflow's has a code of its own for
// each, and its own errors keep MLflow's statuses.
func TestErrorRenderers(t *testing.T) {
	renderers := []struct {
		name string
		r    errorRenderer
		code func(t *testing.T, body any) string
	}{
		{name: "REST", r: restErrors{}, code: func(t *testing.T, body any) string {
			b, ok := body.(api.ErrorBody)
			if !ok {
				t.Fatalf("body %T, want api.ErrorBody", body)
			}
			return string(b.Error.Code)
		}},
		{name: "MLflow", r: mlflowErrors{}, code: func(t *testing.T, body any) string {
			b, ok := body.(mlflowError)
			if !ok {
				t.Fatalf("body %T, want mlflowError", body)
			}
			return b.ErrorCode
		}},
	}
	for _, rr := range renderers {
		for _, code := range api.Codes() {
			t.Run(rr.name+"/"+string(code), func(t *testing.T) {
				err := api.Errorf(code, "message")
				status, body := rr.r.render(err, apiError(err))
				if status != code.Status() {
					t.Errorf("status %d, want %d", status, code.Status())
				}
				got := rr.code(t, body)
				switch rr.name {
				case "REST":
					if got != string(code) {
						t.Errorf("code %q, want %q", got, code)
					}
				case "MLflow":
					if _, ok := mlflowCodes[code]; !ok || got != string(mlflowCodes[code]) {
						t.Errorf("MLflow code %q; want the table's entry for %s", got, code)
					}
				}
			})
		}
	}
	for _, tt := range []struct {
		code   mlflowCode
		status int
		as     api.Code
	}{
		{mlflowInvalidParameter, http.StatusBadRequest, api.CodeBadRequest},
		{mlflowNotFound, http.StatusNotFound, api.CodeNotFound},
		{mlflowAlreadyExists, http.StatusBadRequest, api.CodeConflict},
		{mlflowInvalidState, http.StatusBadRequest, api.CodeConflict},
	} {
		err := mlflowErrorf(tt.code, "m")
		status, body := mlflowErrors{}.render(err, apiError(err))
		if b := body.(mlflowError); status != tt.status || b.ErrorCode != string(tt.code) || b.Message != "m" {
			t.Errorf("%s: %d %+v, want %d with that code", tt.code, status, b, tt.status)
		}
		if ae := apiError(err); ae.Code != tt.as {
			t.Errorf("%s read as an api.Error: %s, want %s", tt.code, ae.Code, tt.as)
		}
	}
	// What a worker answers an exec with is an api.Code, with a status.
	for _, c := range []string{queue.ExecCodeNotRunning, queue.ExecCodeUnsupported, queue.ExecCodeBusy, queue.ExecCodeStart,
		queue.ExecCodeTimeout, queue.ExecCodeWorkerStopped, queue.ExecCodeFailed} {
		if !slices.Contains(api.Codes(), api.Code(c)) {
			t.Errorf("worker exec code %q is not an api.Code", c)
		}
	}
}

// TestErrorsAreRenderedByRouteGroup: each route group answers in its own
// dialect whatever goes wrong, in the handler, in the middleware before it
// (the body cap, authentication) or in the router (no such route, another
// method).
func TestErrorsAreRenderedByRouteGroup(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("x", 2<<20)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		rest                            api.Code   // the REST API's code, or
		mlflow                          mlflowCode // MLflow's
	}{
		{name: "REST: no such route", method: "GET", path: "/v1/nope", token: systemToken, status: 404, rest: api.CodeNotFound},
		{name: "REST: another method", method: "PUT", path: "/v1/jobs", token: systemToken, status: 405, rest: api.CodeMethodNotAllowed},
		{name: "REST: body over the cap", method: "POST", path: "/v1/jobs", token: systemToken, body: big, status: 413, rest: api.CodeTooLarge},
		{name: "REST: no token", method: "GET", path: "/v1/jobs", status: 401, rest: api.CodeUnauthorized},
		{name: "REST: handler", method: "GET", path: "/v1/jobs/01nosuchjob", token: systemToken, status: 404, rest: api.CodeNotFound},
		{name: "REST: bad query", method: "GET", path: "/v1/jobs?limit=0", token: systemToken, status: 400, rest: api.CodeBadRequest},
		{name: "MLflow: no such route", method: "POST", path: mlflowPrefix + "runs/nosuchroute", token: systemToken, body: "{}", status: 404, mlflow: mlflowNoEndpoint},
		{name: "MLflow: another method", method: "GET", path: mlflowPrefix + "runs/create", token: systemToken, status: 405, mlflow: mlflowNoEndpoint},
		{name: "MLflow: body over the cap", method: "POST", path: mlflowPrefix + "runs/create", token: systemToken, body: big, status: 413, mlflow: mlflowInvalidParameter},
		{name: "MLflow: no token", method: "GET", path: mlflowPrefix + "runs/get?run_id=x", status: 401, mlflow: mlflowUnauthenticated},
		{name: "MLflow: handler", method: "GET", path: mlflowPrefix + "runs/get?run_id=01nosuchrun", token: systemToken, status: 404, mlflow: mlflowNotFound},
		{name: "MLflow: its own status", method: "POST", path: mlflowPrefix + "experiments/create", token: systemToken, body: `{"name":"Default"}`, status: 400, mlflow: mlflowAlreadyExists},
	}
	f.mustCall("POST", mlflowPrefix+"experiments/create", systemToken, `{"name":"Default"}`, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call(tt.method, tt.path, tt.token, tt.body)
			if code != tt.status {
				t.Fatalf("%d %s, want %d", code, body, tt.status)
			}
			if tt.rest != "" {
				var e api.ErrorBody
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != tt.rest || e.Error.Message == "" {
					t.Fatalf("%s, want a REST error %s", body, tt.rest)
				}
				return
			}
			var e mlflowError
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.ErrorCode != string(tt.mlflow) || e.Message == "" {
				t.Fatalf("%s, want an MLflow error %s", body, tt.mlflow)
			}
		})
	}
}

// TestNoErrorNamesAStatus: errors are made from codes (api.Errorf); the
// code says the status, in one table. No call site names one (the old
// errorf(status, code, ...) is gone with the code that moved to the job
// service and the controllers).
func TestNoErrorNamesAStatus(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			where := name + ":" + fn.Name.Name
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "errorf" {
						t.Errorf("%s: %s calls errorf(status, code, ...); use api.Errorf(code, ...)", fset.Position(n.Pos()), where)
					}
				case *ast.CompositeLit:
					if sel, ok := n.Type.(*ast.SelectorExpr); ok && sel.Sel.Name == "Error" {
						if x, ok := sel.X.(*ast.Ident); ok && x.Name == "api" {
							t.Errorf("%s: %s builds an api.Error by hand; use api.Errorf", fset.Position(n.Pos()), where)
						}
					}
				}
				return true
			})
		}
	}
}

// TestMLflowIsAnAdapter: the MLflow dialect translates MLflow's requests and
// answers onto the tracking code (tracking.go, experiments.go), which the
// REST handlers call too; it reads and writes no store itself. It may name
// the store's types, limits and sentinels, and check a batch with
// store.CheckKV before it writes any of it.
func TestMLflowIsAnAdapter(t *testing.T) {
	files, err := filepath.Glob("mlflow*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if !strings.HasSuffix(name, "_test.go") {
			checkMLflowAdapter(t, name)
		}
	}
}

func checkMLflowAdapter(t *testing.T, name string) {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"MetricPoint": true, "ErrNotFound": true, "MaxParamValueLen": true, "MaxTagValueLen": true, "CheckKV": true}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch x := sel.X.(type) {
		case *ast.Ident:
			if x.Name == "store" && !allowed[sel.Sel.Name] {
				t.Errorf("%s: %s uses store.%s; call the tracking code instead", fset.Position(sel.Pos()), name, sel.Sel.Name)
			}
		case *ast.SelectorExpr:
			if id, ok := x.X.(*ast.Ident); ok && id.Name == "g" && (x.Sel.Name == "store" || x.Sel.Name == "rdb" || x.Sel.Name == "artifacts") {
				t.Errorf("%s: %s calls g.%s.%s; call the tracking code instead", fset.Position(sel.Pos()), name, x.Sel.Name, sel.Sel.Name)
			}
		}
		return true
	})
}

// TestMLflowGroupAnswersOptionsAsEcho: the MLflow group answers its own 404
// and 405 (routeGroup.notFound), and must answer what echo's router did
// before it for a path of the group: OPTIONS is a 204 with the Allow header,
// and a 405's Allow names OPTIONS too, as the REST API's do.
func TestMLflowGroupAnswersOptionsAsEcho(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"REST: OPTIONS", http.MethodOptions, "/v1/jobs", http.StatusNoContent, "OPTIONS, GET, POST"},
		{"REST: another method", http.MethodPut, "/v1/jobs", http.StatusMethodNotAllowed, "OPTIONS, GET, POST"},
		{"MLflow: OPTIONS of a GET route", http.MethodOptions, mlflowPrefix + "runs/get", http.StatusNoContent, "OPTIONS, GET"},
		{"MLflow: OPTIONS of a POST route", http.MethodOptions, mlflowPrefix + "runs/create", http.StatusNoContent, "OPTIONS, POST"},
		{"MLflow: another method", http.MethodPut, mlflowPrefix + "runs/get", http.StatusMethodNotAllowed, "OPTIONS, GET"},
		{"MLflow: HEAD", http.MethodHead, mlflowPrefix + "runs/create", http.StatusMethodNotAllowed, "OPTIONS, POST"},
		{"MLflow: OPTIONS of no route", http.MethodOptions, mlflowPrefix + "nope", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, f.ts.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+systemToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
				t.Fatalf("%s %s: %d Allow %q, want %d Allow %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Allow"), tt.status, tt.allow)
			}
		})
	}
}
