package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

func TestNestedJobs(t *testing.T) {
	f := newFixture(t)
	f.workspace("team-b", api.Quotas{})
	other := f.token("team-b", api.ScopeAdmin)
	child := func(token, parent string) (int, api.Job, string) {
		code, body := f.call("POST", "/v1/jobs", token, `{"image":"localhost/x:1","command":["x"],"parent_id":"`+parent+`"}`)
		var j api.Job
		if code == http.StatusCreated {
			if err := json.Unmarshal([]byte(body), &j); err != nil {
				t.Fatal(err)
			}
		}
		return code, j, body
	}
	var parent api.Job
	f.mustCall("POST", "/v1/jobs", systemToken, jobBody, &parent)
	_, c1, _ := child(systemToken, parent.ID)
	_, c2, _ := child(systemToken, parent.ID)
	_, grand, _ := child(systemToken, c1.ID)
	if c1.Spec.ParentID != parent.ID {
		t.Fatalf("child's parent_id = %q", c1.Spec.ParentID)
	}
	var kids struct{ Jobs []api.Job }
	f.mustCall("GET", "/v1/jobs/"+parent.ID+"/children", systemToken, "", &kids)
	if len(kids.Jobs) != 2 || kids.Jobs[0].ID != c1.ID || kids.Jobs[1].ID != c2.ID {
		t.Fatalf("children = %+v; want %s, %s", kids.Jobs, c1.ID, c2.ID)
	}
	// Another workspace cannot hang a child on this parent.
	if code, _, body := child(other.Secret, parent.ID); code != http.StatusUnprocessableEntity || !strings.Contains(body, "parent_id") {
		t.Fatalf("child of another workspace's job: %d %s", code, body)
	}
	// Canceling the parent cancels its whole tree.
	f.mustCall("POST", "/v1/jobs/"+parent.ID+"/cancel", systemToken, "", nil)
	for _, id := range []string{parent.ID, c1.ID, c2.ID, grand.ID} {
		var j api.Job
		f.mustCall("GET", "/v1/jobs/"+id, systemToken, "", &j)
		if j.Status != api.StatusCanceled {
			t.Fatalf("job %s is %s after its ancestor was canceled", id, j.Status)
		}
	}
	if code, _, body := child(systemToken, parent.ID); code != http.StatusUnprocessableEntity || !strings.Contains(body, "canceled") {
		t.Fatalf("child of a canceled parent: %d %s", code, body)
	}
}
