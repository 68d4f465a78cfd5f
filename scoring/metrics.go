package scoring

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/felixge/httpsnoop"

	"github.com/jobgate/jobgate/internal/metrics"
	"github.com/jobgate/jobgate/internal/traffic"
)

// serveMetrics serves GET /metrics (Config.MetricsGatherer) to the system
// admin token only: 401 without a bearer token, 403 with another one.
func (r *Router) serveMetrics(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "%s is not allowed on /metrics (allowed: GET)", req.Method)
		return
	}
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		writeError(w, http.StatusUnauthorized, "missing bearer token: send Authorization: Bearer <token>")
		return
	}
	got := sha256.Sum256([]byte(tok))
	if r.cfg.AdminToken == "" || subtle.ConstantTimeCompare(got[:], r.adminHash[:]) != 1 {
		writeError(w, http.StatusForbidden, "only the system admin token may read /metrics")
		return
	}
	metrics.Handler(r.cfg.MetricsGatherer).ServeHTTP(w, req)
}

// serveMeasured serves an inference request and observes it (Prometheus
// metrics, and the traffic the gateway shows): its status
// code and latency, by the deployment it found (a name no deployment has is
// not a label: anyone can make one up) and the version that served it.
func (r *Router) serveMeasured(w http.ResponseWriter, req *http.Request, rc *reqCtx) {
	m := httpsnoop.CaptureMetrics(r.served, w, req)
	if rc.dep == nil {
		return
	}
	version := 0
	if rc.rep != nil {
		version = rc.rep.version
	}
	if r.cfg.Metrics != nil {
		r.cfg.Metrics.Request(rc.dep.key.ws, rc.dep.key.name, version, m.Code, m.Duration)
	}
	if r.traffic != nil {
		r.traffic.Record(traffic.Deployment{Workspace: rc.dep.key.ws, Name: rc.dep.key.name}, version, m.Code, m.Duration)
	}
}
