package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// errMessage is the message of an API error body, or the body as it is.
func errMessage(body string) string {
	var e api.ErrorBody
	if json.Unmarshal([]byte(body), &e) != nil || e.Error.Code == "" {
		return body
	}
	return e.Error.Message
}

// datastoreBody registers datastore name below the fixture's root.
func datastoreBody(name string) string {
	return `{"name":"` + name + `","path":"` + testDatastoreRoot + "/" + name + `"}`
}

// datastoreRootDir makes a real datastore root with links in it: "inside"
// leads to a folder below the root, "escape" to a folder outside it.
func datastoreRootDir(t *testing.T) (root, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "file.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "sub"), filepath.Join(root, "inside")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func TestDatastoreRegistration(t *testing.T) {
	f := newFixture(t)
	root, outside := datastoreRootDir(t)
	f.g.cfg.DatastoreRoots = []string{root, testDatastoreRoot}
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin).Secret
	submitter := f.token("team-a", api.ScopeSubmit).Secret

	tests := []struct {
		name     string
		token    string
		body     string
		wantCode int
		mentions string
	}{
		{"bad name", admin, `{"name":"-x","path":"` + root + `"}`, 422, "name"},
		{"no path", admin, `{"name":"d"}`, 422, "path is required"},
		{"relative path", admin, `{"name":"d","path":"data/train"}`, 422, "path \"data/train\" must be absolute"},
		{"dot-dot", admin, `{"name":"d","path":"` + testDatastoreRoot + `/../../../etc"}`, 422, "must be clean"},
		{"trailing slash", admin, `{"name":"d","path":"` + testDatastoreRoot + `/a/"}`, 422, "must be clean"},
		{"NUL", admin, `{"name":"d","path":"` + testDatastoreRoot + `/a\u0000b"}`, 422, "without NUL"},
		{"unknown field", admin, `{"name":"d","path":"` + root + `","mode":"rw"}`, 422, "unknown field"},
		{"outside the roots", admin, `{"name":"d","path":"/etc"}`, 403, "path \"/etc\" is not below a datastore root"},
		{"a sibling with the root's name as prefix", admin, `{"name":"d","path":"` + testDatastoreRoot + `-evil"}`, 403, "not below a datastore root"},
		{"a link out of the root", admin, `{"name":"d","path":"` + root + `/escape"}`, 403, "symbolic link"},
		{"a missing folder through a link out of the root", admin, `{"name":"d","path":"` + root + `/escape/not/yet"}`, 403, "symbolic link"},
		{"a file", admin, `{"name":"d","path":"` + root + `/file.txt"}`, 422, "not a folder"},
		{"submit scope", submitter, `{"name":"d","path":"` + root + `"}`, 403, "admin"},
		{"the root itself", admin, `{"name":"whole","path":"` + root + `"}`, 201, ""},
		{"a link that stays inside", admin, `{"name":"linked","path":"` + root + `/inside"}`, 201, ""},
		{"a folder that does not exist here", admin, `{"name":"later","path":"` + testDatastoreRoot + `/team-a/train"}`, 201, ""},
		{"the same name again", admin, `{"name":"whole","path":"` + root + `/sub"}`, 409, "exists"},
		{"system admin: anywhere", systemToken, `{"name":"anywhere","path":"` + outside + `"}`, 201, ""},
		{"system admin: still clean and absolute", systemToken, `{"name":"rel","path":"etc"}`, 422, "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call("POST", "/v1/datastores", tt.token, tt.body)
			if code != tt.wantCode || !strings.Contains(errMessage(body), tt.mentions) {
				t.Fatalf("got %d %s, want %d mentioning %q", code, body, tt.wantCode, tt.mentions)
			}
			if code >= 400 {
				var e api.ErrorBody
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code == "" {
					t.Fatalf("error body %s is not an API error", body)
				}
			}
		})
	}

	var list api.DatastoreList
	f.mustCall("GET", "/v1/datastores", admin, "", &list)
	var got []string
	for _, d := range list.Datastores {
		got = append(got, d.Name+" "+d.Path+" by "+d.CreatedBy)
	}
	want := []string{"later " + testDatastoreRoot + "/team-a/train by t-admin", "linked " + root + "/inside by t-admin", "whole " + root + " by t-admin"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("team-a's datastores (-want +got):\n%s", diff)
	}
	// The system admin's went to its own workspace, default.
	var d api.Datastore
	f.mustCall("GET", "/v1/datastores/anywhere", systemToken, "", &d)
	if d.Path != outside || d.CreatedAt.IsZero() {
		t.Fatalf("GET anywhere: %+v", d)
	}
	if code, _ := f.call("GET", "/v1/datastores/anywhere", admin, ""); code != http.StatusNotFound {
		t.Fatalf("team-a sees default's datastore: %d", code)
	}
	// Stored with the root it was admitted under, for the workers to check.
	if sd, err := f.st.Datastore(t.Context(), "team-a", "linked"); err != nil || sd.Root != root {
		t.Fatalf("stored datastore: %+v, %v; want root %s", sd, err, root)
	}

	f.mustCall("DELETE", "/v1/datastores/whole", admin, "", nil)
	if code, body := f.call("DELETE", "/v1/datastores/whole", admin, ""); code != http.StatusNotFound {
		t.Fatalf("second delete: %d %s", code, body)
	}
	var audit struct{ Entries []api.AuditEntry }
	f.mustCall("GET", "/v1/audit", admin, "", &audit)
	var actions []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "datastore.") {
			actions = append(actions, e.Action+" "+e.Target)
		}
	}
	wantActions := []string{"datastore.delete whole", "datastore.create later (" + testDatastoreRoot + "/team-a/train)",
		"datastore.create linked (" + root + "/inside)", "datastore.create whole (" + root + ")"}
	if diff := cmp.Diff(wantActions, actions); diff != "" {
		t.Fatalf("audit (-want +got):\n%s", diff)
	}
}

func TestDatastoresWithoutRootsAreSystemOnly(t *testing.T) {
	f := newFixture(t)
	f.g.cfg.DatastoreRoots = nil
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin).Secret
	code, body := f.call("POST", "/v1/datastores", admin, datastoreBody("d"))
	if code != http.StatusForbidden || !strings.Contains(body, "no datastore roots") {
		t.Fatalf("workspace admin without roots: %d %s, want 403 naming --datastore-root", code, body)
	}
	f.mustCall("POST", "/v1/datastores", systemToken, datastoreBody("d"), nil)
}

func TestJobInputsAreChecked(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin).Secret
	f.mustCall("POST", "/v1/datastores", admin, datastoreBody("train"), nil)
	f.mustCall("POST", "/v1/datastores", f.token("team-b", api.ScopeAdmin).Secret, datastoreBody("theirs"), nil)

	job := func(inputs string) string {
		return `{"image":"localhost/x:1","command":["x"],"inputs":` + inputs + `}`
	}
	tests := []struct {
		name, inputs, mentions string
	}{
		{"upper-case name", `{"Data":{"datastore":"train"}}`, `inputs: name "Data"`},
		{"name starting with a digit", `{"1data":{"datastore":"train"}}`, `inputs: name "1data"`},
		{"no datastore", `{"data":{"path":"x"}}`, "inputs.data.datastore is required"},
		{"bad datastore name", `{"data":{"datastore":"../x"}}`, "inputs.data.datastore \"../x\" is not a datastore name"},
		{"unknown datastore", `{"data":{"datastore":"nope"}}`, "inputs.data.datastore: no datastore \"nope\" in workspace team-a"},
		{"another workspace's datastore", `{"data":{"datastore":"theirs"}}`, "inputs.data.datastore: no datastore \"theirs\""},
		{"absolute path", `{"data":{"datastore":"train","path":"/etc"}}`, "inputs.data.path: \"/etc\" must be relative"},
		{"dot-dot path", `{"data":{"datastore":"train","path":"../../etc"}}`, "inputs.data.path"},
		{"dot-dot inside", `{"data":{"datastore":"train","path":"a/../../b"}}`, "inputs.data.path"},
		{"empty segment", `{"data":{"datastore":"train","path":"a//b"}}`, "inputs.data.path"},
		{"dot", `{"data":{"datastore":"train","path":"."}}`, "inputs.data.path"},
		{"NUL", `{"data":{"datastore":"train","path":"a\u0000"}}`, "inputs.data.path"},
		{"bad mode", `{"data":{"datastore":"train","mode":"rw"}}`, `inputs.data.mode must be "ro_mount" or "download", not "rw"`},
		{"not an object", `["train"]`, "inputs must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call("POST", "/v1/jobs", admin, job(tt.inputs))
			if code != http.StatusUnprocessableEntity || !strings.Contains(errMessage(body), tt.mentions) {
				t.Fatalf("got %d %s, want 422 mentioning %q", code, body, tt.mentions)
			}
		})
	}

	var j api.Job
	f.mustCall("POST", "/v1/jobs", admin, job(`{"data":{"datastore":"train","path":"sets/v1"},"copy":{"datastore":"train","mode":"download"}}`), &j)
	want := map[string]api.Input{
		"data": {Datastore: "train", Path: "sets/v1", Mode: api.InputReadOnlyMount},
		"copy": {Datastore: "train", Mode: api.InputDownload},
	}
	if diff := cmp.Diff(want, j.Spec.Inputs); diff != "" {
		t.Fatalf("stored inputs (-want +got):\n%s", diff)
	}
	// Schedules check their job's inputs as a submit does.
	code, body := f.call("POST", "/v1/schedules", admin, `{"name":"s","cron":"0 0 1 1 *","job":`+job(`{"data":{"datastore":"nope"}}`)+`}`)
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "no datastore") {
		t.Fatalf("schedule with an unknown datastore: %d %s", code, body)
	}
}

// TestDatastoreRootsPerWorkspace: a root given as WORKSPACE=/path is that
// workspace's only; another workspace's admin cannot register below it.
func TestDatastoreRootsPerWorkspace(t *testing.T) {
	f := newFixture(t)
	rootA, rootB := t.TempDir(), t.TempDir()
	f.g.cfg.DatastoreRoots = cleanRoots([]string{"team-a=" + rootA, "team-b=" + rootB + "/"})
	f.workspace("team-a", api.Quotas{})
	f.workspace("team-b", api.Quotas{})
	adminA, adminB := f.token("team-a", api.ScopeAdmin).Secret, f.token("team-b", api.ScopeAdmin).Secret
	tests := []struct {
		name, token, path string
		wantCode          int
	}{
		{"own root", adminA, rootA, 201},
		{"below own root", adminB, rootB + "/sets", 201},
		{"the other team's root", adminB, rootA, 403},
		{"below the other team's root", adminA, rootB + "/sets", 403},
	}
	for i, tt := range tests {
		code, body := f.call("POST", "/v1/datastores", tt.token, fmt.Sprintf(`{"name":"d%d","path":%q}`, i, tt.path))
		if code != tt.wantCode || (code == 403 && !strings.Contains(body, "path")) {
			t.Errorf("%s: %d %s, want %d", tt.name, code, body, tt.wantCode)
		}
	}
	for _, bad := range []string{"team-a=data", "=/srv", "Team A=/srv", "relative"} {
		if err := (Config{AdminToken: systemToken, DatastoreRoots: []string{bad}}).Validate(); err == nil {
			t.Errorf("--datastore-root %q accepted", bad)
		}
	}
}
