package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	ts := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	body := api.JobMetrics{Metrics: map[string][]api.MetricPoint{
		"loss": {{Step: 1, Value: 0.8, Timestamp: ts}, {Step: 2, Value: 0.7, Timestamp: ts.Add(time.Second)}},
	}}
	tests := []struct {
		name      string
		names     []string
		wantQuery string
		answer    any
		want      *api.JobMetrics
	}{
		{name: "all", wantQuery: "", answer: body, want: &body},
		{name: "some", names: []string{"loss", "val/acc"}, wantQuery: "name=loss&name=val%2Facc", answer: body, want: &body},
		{name: "null map is empty", answer: map[string]any{"metrics": nil},
			want: &api.JobMetrics{Metrics: map[string][]api.MetricPoint{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/v1/jobs/j1/metrics" || r.URL.RawQuery != tt.wantQuery {
					t.Errorf("request %s %s, want GET /v1/jobs/j1/metrics?%s", r.Method, r.URL.RequestURI(), tt.wantQuery)
				}
				writeJSON(t, w, http.StatusOK, tt.answer)
			})
			got, err := c.Metrics(context.Background(), "j1", tt.names...)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Metrics (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMetricsNotFound(t *testing.T) {
	t.Parallel()
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, http.StatusNotFound, api.ErrorBody{Error: api.ErrorDetail{Code: "not_found", Message: "not found"}})
	})
	_, err := c.Metrics(context.Background(), "nope")
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || e.Code != "not_found" {
		t.Fatalf("err = %v, want a 404 not_found *client.Error", err)
	}
	if _, err := c.Metrics(context.Background(), ""); err == nil {
		t.Fatal("an empty id was sent")
	}
}

// Print the loss curve of a job that reports "::metric name=loss value=... step=..."
// lines on its stdout.
func ExampleClient_Metrics() {
	c := client.New("http://127.0.0.1:8080", os.Getenv("JOBGATE_TOKEN"))
	m, err := c.Metrics(context.Background(), "01m8f2pkkz9d76se4740p2fpfg", "loss")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range m.Metrics["loss"] {
		fmt.Printf("step %d: %g\n", p.Step, p.Value)
	}
}
