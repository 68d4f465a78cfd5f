package gateway

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// A gateway with metrics counts the jobs submitted and the webhook
// deliveries by outcome (a refused signature too), and serves them on
// GET /metrics to the system admin token.
func TestGatewayMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.workspace("team-a", api.Quotas{})
	admin := f.token("team-a", api.ScopeAdmin)
	secret := webhook.NewSecret()
	tv := f.createTrigger(admin.Secret, `{"name":"dataset","provider":"standard","secret":"`+secret+`",
		"filter":{"event":"dataset.updated"},"job":{"image":"localhost/train:1","command":["train"]}}`)

	reg := metrics.NewRegistry()
	m := metrics.NewControl(reg, f.st)
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := newGateway(t, Config{AdminToken: systemToken, Metrics: m, MetricsGatherer: reg}, control.Config{Metrics: m}, f.st.Redis(), f.st, box, nil)
	ts := httptest.NewServer(checked(t, g))
	t.Cleanup(ts.Close)
	srv := ts.URL

	updated := []byte(`{"type":"dataset.updated"}`)
	now := time.Now()
	for _, d := range []struct {
		secret, id string
		want       int
	}{{secret, "msg_1", 202}, {secret, "msg_1", 200}, {webhook.NewSecret(), "msg_2", 401}} {
		if code, body := f.deliver(srv, tv.HookURL, standardHeaders(t, d.secret, d.id, now, updated), updated); code != d.want {
			t.Fatalf("delivery %s: %d %s, want %d", d.id, code, body, d.want)
		}
	}
	scrape := testenv.Scrape(t, srv+"/metrics", systemToken)
	testenv.CheckMetrics(t, scrape)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"jobgate_jobs_submitted_total", []string{"workspace", "team-a"}, 1},
		{"jobgate_webhook_deliveries_total", []string{"workspace", "team-a", "outcome", "accepted"}, 1},
		{"jobgate_webhook_deliveries_total", []string{"workspace", "team-a", "outcome", "duplicate"}, 1},
		{"jobgate_webhook_deliveries_total", []string{"workspace", "team-a", "outcome", "bad_signature"}, 1},
		{"jobgate_queue_depth", []string{"priority", "normal"}, 1},
	} {
		if got := testenv.MetricValue(t, scrape, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if code, _ := f.call("GET", "/metrics", systemToken, ""); code != 404 {
		t.Errorf("GET /metrics of a gateway without MetricsGatherer: %d, want 404", code)
	}
}
