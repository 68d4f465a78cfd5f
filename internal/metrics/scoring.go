package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Scoring is the metric set of a scoring router. Nil: off.
type Scoring struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// ScoringBuckets are jobgate_scoring_request_seconds's: a model answers in
// a millisecond or in tens of seconds.
var ScoringBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewScoring registers the router's metrics on reg; nil reg is nil (off).
func NewScoring(reg prometheus.Registerer) *Scoring {
	if reg == nil {
		return nil
	}
	return &Scoring{
		requests: counterVec(reg, "scoring_requests_total",
			"Inference requests (POST /v2/models/{name}/infer) answered, by workspace, deployment, model version served (\"\" when none was) and HTTP status code.",
			"workspace", "deployment", "version", "code"),
		latency: histogramVec(reg, "scoring_request_seconds",
			"Time to answer an inference request, hold for a replica and retries included, by workspace, deployment and model version served.",
			ScoringBuckets, "workspace", "deployment", "version"),
	}
}

// Request observes one inference request to deployment of workspace ws,
// answered with code after d; version is the model version that served it,
// 0 for none. Only call it for a deployment that exists: its name is a
// label.
func (m *Scoring) Request(ws, deployment string, version, code int, d time.Duration) {
	if m == nil {
		return
	}
	v := ""
	if version > 0 {
		v = strconv.Itoa(version)
	}
	m.requests.WithLabelValues(ws, deployment, v, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(ws, deployment, v).Observe(d.Seconds())
}
