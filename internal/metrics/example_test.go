package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"

	"github.com/jobgate/jobgate/internal/metrics"
)

// A process makes one registry, gives it to the sets of the parts it runs,
// and serves it; the parts count through their set.
func Example() {
	reg := metrics.NewRegistry()
	control := metrics.NewControl(reg, nil) // nil: no queue figures from Redis
	control.JobSubmitted("team-a")

	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, "jobgate_jobs_submitted_total") {
			fmt.Println(line)
		}
	}
	// Output: jobgate_jobs_submitted_total{workspace="team-a"} 1
}
