package client_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// TestResourceRoutes: each method sends its route, with names escaped into
// one path segment and only the fields set in a patch, and decodes what
// the gateway answers.
func TestResourceRoutes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cron := "0 3 * * *"
	yes := true
	for _, tt := range []struct {
		name   string
		call   func(*client.Client) error
		want   string // "METHOD escaped-path?query body"
		answer any
	}{
		{"create workspace", func(c *client.Client) error {
			_, err := c.CreateWorkspace(ctx, api.Workspace{Name: "w", Quotas: api.Quotas{MaxGPUs: 2}})
			return err
		}, `POST /v1/workspaces {"name":"w","quotas":{"max_gpus":2},"allow_host_process":false,"created_at":"0001-01-01T00:00:00Z"}`, api.Workspace{Name: "w"}},
		{"update workspace", func(c *client.Client) error {
			_, err := c.UpdateWorkspace(ctx, "team a", client.WorkspacePatch{AllowHostProcess: &yes})
			return err
		}, `PATCH /v1/workspaces/team%20a {"allow_host_process":true}`, api.Workspace{Name: "team a"}},
		{"create token", func(c *client.Client) error {
			tok, err := c.CreateToken(ctx, "w", client.TokenRequest{Name: "ci", Scopes: []api.Scope{api.ScopeRead}})
			if err == nil && tok.Secret != "jgt_x" {
				return fmt.Errorf("secret = %q, want the answer's jgt_x", tok.Secret)
			}
			return err
		}, `POST /v1/workspaces/w/tokens {"name":"ci","scopes":["read"]}`, api.NewToken{Secret: "jgt_x"}},
		{"delete token", func(c *client.Client) error { return c.DeleteToken(ctx, "w", "tok/1") },
			`DELETE /v1/workspaces/w/tokens/tok%2F1 `, nil},
		{"delete model", func(c *client.Client) error { return c.DeleteModel(ctx, "iris") },
			`DELETE /v1/models/iris `, nil},
		{"put secret", func(c *client.Client) error { return c.PutSecret(ctx, "db", "v") },
			`POST /v1/secrets {"name":"db","value":"v"}`, api.SecretName{Name: "db"}},
		{"audit", func(c *client.Client) error { _, err := c.Audit(ctx, 5, "1-2"); return err },
			`GET /v1/audit?cursor=1-2&limit=5 `, api.AuditPage{}},
		{"list sweeps", func(c *client.Client) error {
			l, err := c.ListSweeps(ctx, 2, "01kcursor")
			if err == nil && (len(l.Sweeps) != 1 || l.NextCursor != "n") {
				return fmt.Errorf("list = %+v, want the answer's one sweep and cursor", l)
			}
			return err
		}, `GET /v1/sweeps?cursor=01kcursor&limit=2 `, api.SweepList{Sweeps: []api.SweepSummary{{ID: "s"}}, NextCursor: "n"}},
		{"sweep trials", func(c *client.Client) error { _, err := c.SweepTrials(ctx, "s/1"); return err },
			`GET /v1/sweeps/s%2F1/trials `, api.SweepTrials{}},
		{"cancel sweep", func(c *client.Client) error { _, err := c.CancelSweep(ctx, "s"); return err },
			`POST /v1/sweeps/s/cancel `, api.Sweep{ID: "s"}},
		{"trigger deliveries", func(c *client.Client) error { _, err := c.TriggerDeliveries(ctx, "a b"); return err },
			`GET /v1/triggers/a%20b/deliveries `, api.DeliveryList{}},
		{"update trigger", func(c *client.Client) error {
			_, err := c.UpdateTrigger(ctx, "b", api.TriggerPatch{Filter: &api.TriggerFilter{Event: "push"}})
			return err
		}, `PATCH /v1/triggers/b {"filter":{"event":"push"}}`, api.Trigger{Name: "b"}},
		{"update schedule", func(c *client.Client) error {
			_, err := c.UpdateSchedule(ctx, "n", api.SchedulePatch{Cron: &cron})
			return err
		}, `PATCH /v1/schedules/n {"cron":"0 3 * * *"}`, api.Schedule{Name: "n"}},
		{"pause schedule", func(c *client.Client) error { _, err := c.PauseSchedule(ctx, "n"); return err },
			`POST /v1/schedules/n/pause `, api.Schedule{Name: "n", Paused: true}},
		{"run schedule", func(c *client.Client) error { _, err := c.RunSchedule(ctx, "n"); return err },
			`POST /v1/schedules/n/run `, api.Job{ID: "j"}},
		{"queue", func(c *client.Client) error { _, err := c.Queue(ctx, 10); return err },
			`GET /v1/queue?limit=10 `, api.Queue{Total: 0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got := r.Method + " " + r.URL.EscapedPath()
				if r.URL.RawQuery != "" {
					got += "?" + r.URL.RawQuery
				}
				if got += " " + string(b); got != tt.want {
					t.Errorf("request = %s\nwant      %s", got, tt.want)
				}
				if tt.answer == nil {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				writeJSON(t, w, http.StatusOK, tt.answer)
			})
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestEmptyNamesAreLocalErrors: an empty name never becomes a request for
// the collection.
func TestEmptyNamesAreLocalErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	})
	for what, err := range map[string]error{
		"trigger":   c.DeleteTrigger(ctx, ""),
		"schedule":  c.DeleteSchedule(ctx, ""),
		"secret":    c.DeleteSecret(ctx, ""),
		"workspace": func() error { _, err := c.Tokens(ctx, ""); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), what+" name is empty") {
			t.Errorf("%s: error = %v", what, err)
		}
	}
}
