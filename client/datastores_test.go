package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

func TestDatastores(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	train := api.Datastore{Name: "train", Path: "/srv/data/train", CreatedAt: at, CreatedBy: "ci"}
	tests := []struct {
		name     string
		call     func(c *client.Client) (any, error)
		wantReq  string // method, path and body as sent
		status   int
		answer   any
		want     any
		wantCode string // the client.Error's code, when it fails
	}{
		{
			name: "create",
			call: func(c *client.Client) (any, error) {
				return c.CreateDatastore(context.Background(), "train", "/srv/data/train")
			},
			wantReq: `POST /v1/datastores {"name":"train","path":"/srv/data/train"}`,
			status:  http.StatusCreated, answer: train, want: &train,
		},
		{
			name:    "create refused",
			call:    func(c *client.Client) (any, error) { return c.CreateDatastore(context.Background(), "etc", "/etc") },
			wantReq: `POST /v1/datastores {"name":"etc","path":"/etc"}`,
			status:  http.StatusForbidden, answer: api.ErrorBody{Error: api.ErrorDetail{Code: "forbidden", Message: "path \"/etc\" is not below a datastore root"}},
			wantCode: "forbidden",
		},
		{
			name:    "list",
			call:    func(c *client.Client) (any, error) { return c.ListDatastores(context.Background()) },
			wantReq: "GET /v1/datastores ",
			status:  http.StatusOK, answer: api.DatastoreList{Datastores: []api.Datastore{train}}, want: []api.Datastore{train},
		},
		{
			name:    "get, the name escaped",
			call:    func(c *client.Client) (any, error) { return c.Datastore(context.Background(), "a/b") },
			wantReq: "GET /v1/datastores/a%2Fb ",
			status:  http.StatusOK, answer: train, want: &train,
		},
		{
			name:    "delete",
			call:    func(c *client.Client) (any, error) { return nil, c.DeleteDatastore(context.Background(), "train") },
			wantReq: "DELETE /v1/datastores/train ",
			status:  http.StatusNoContent,
		},
		{
			name:    "delete a missing one",
			call:    func(c *client.Client) (any, error) { return nil, c.DeleteDatastore(context.Background(), "nope") },
			wantReq: "DELETE /v1/datastores/nope ",
			status:  http.StatusNotFound, answer: api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "no datastore \"nope\""}},
			wantCode: "not_found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var gotReq string
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				gotReq = r.Method + " " + r.URL.EscapedPath() + " " + string(b)
				if tt.answer == nil {
					w.WriteHeader(tt.status)
					return
				}
				writeJSON(t, w, tt.status, tt.answer)
			})
			got, err := tt.call(c)
			if gotReq != tt.wantReq {
				t.Errorf("request %q, want %q", gotReq, tt.wantReq)
			}
			if tt.wantCode != "" {
				var ce *client.Error
				if !errors.As(err, &ce) || ce.Code != tt.wantCode || ce.StatusCode != tt.status {
					t.Fatalf("error %v, want a client.Error %s (%d)", err, tt.wantCode, tt.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Fatalf("result (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// Register a datastore, then train on part of it: the job reads
// /inputs/data (read-only) in its container.
func ExampleClient_CreateDatastore() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("JOBGATE_TOKEN"))

	if _, err := c.CreateDatastore(ctx, "imagenet", "/srv/data/imagenet"); err != nil {
		log.Fatal(err)
	}
	job, err := c.Submit(ctx, api.JobSpec{
		Image:   "localhost/jobgate-examples:latest",
		Command: []string{"/bin/toolbox", "ls", "/inputs/data"},
		Inputs:  map[string]api.Input{"data": {Datastore: "imagenet", Path: "train/v2"}},
	}, "")
	if err != nil {
		log.Fatal(err)
	}
	b, _ := json.Marshal(job.Spec.Inputs)
	fmt.Println(string(b))
}
