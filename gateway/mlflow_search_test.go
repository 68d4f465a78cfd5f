package gateway

import (
	"strings"
	"testing"
)

func TestMLflowSearchFilterParser(t *testing.T) {
	run := &searchRun{
		MetricValues: map[string]float64{"acc": 0.93, "my loss": 0.2},
		Params:       map[string]string{"lr": "0.01", "opt": "Adam"},
		Tags:         map[string]string{"x": "y", "mlflow.runName": "baseline-1"},
		Attrs:        map[string]string{"status": "FINISHED", "run_name": "baseline-1", "run_id": "r1"},
		Times:        map[string]float64{"start_time": 1000},
	}
	valid := []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"metrics.acc > 0.9 and params.lr = '0.01' and tags.x = 'y' and attributes.status = 'FINISHED'", true},
		{"metrics.acc > 0.95", false},
		{"metrics.acc >= 0.93 AND metrics.acc <= 0.93 AND metrics.acc != 1", true},
		{"metrics.`my loss` < 0.5", true},
		{`metrics."my loss" < 0.1`, false},
		{"metric.acc = 0.93", true},
		{"params.opt LIKE 'Ad%'", true},
		{"params.opt LIKE 'ad%'", false},
		{"params.opt ILIKE 'ad_m'", true},
		{"params.missing = 'x'", false},
		{"tags.`mlflow.runName` = 'baseline-1'", true},
		{"tags.mlflow.runName = \"baseline-1\"", true},
		{"attributes.run_id IN ('r1', 'r2')", true},
		{"attributes.run_id NOT IN ('r1')", false},
		{"attributes.start_time > 999", true},
		{"run.status != 'RUNNING'", true},
		{"attr.run_name <> 'other'", true},
		{"params.lr == '0.01'", true},
		{"metrics.acc > 9e-1", true},
		{"status = 'FINISHED' and run_name LIKE 'base%'", true},
	}
	for _, tc := range valid {
		conds, err := runSearch.parseFilter(tc.filter)
		if err != nil {
			t.Errorf("%q: %v", tc.filter, err)
			continue
		}
		if got := run.matches(conds); got != tc.want {
			t.Errorf("%q matches = %v, want %v", tc.filter, got, tc.want)
		}
	}
	invalid := []struct{ filter, names string }{
		{"metrics.acc > 0.9 OR params.lr = '1'", "OR is not supported"},
		{"metrics.acc > 'high'", "metrics.acc"},
		{"params.lr > '0.1'", "params.lr"},
		{"params.lr = 0.01", "must be quoted"},
		{"foo.bar = 'x'", "invalid entity type 'foo'"},
		{"acc > 1", "invalid attribute key 'acc'"},
		{"AND acc > 1", "expected a key"},
		{"attributes.colour = 'red'", "invalid attribute key 'colour'"},
		{"params.lr = '0.01", "unterminated string"},
		{"metrics.acc >", "needs a string or number"},
		{"metrics.acc", "has no comparator"},
		{"metrics.acc > 1 metrics.b > 2", "expected AND"},
		{"metrics.acc > 1 AND", "expected a key"},
		{"tags.x IN 'y'", "needs a list"},
		{"tags.x IN ('y'", "not closed"},
		{"tags.x IN (1)", "string literals only"},
		{"metrics.`acc > 1", "unterminated quoted name"},
		{"params.lr ! '1'", "use !="},
		{"params.lr = '1' ; drop", "unexpected character"},
		{"metrics. > 1", "names no key"},
		{"attributes.start_time > '1'", "attributes.start_time"},
	}
	for _, tc := range invalid {
		_, err := runSearch.parseFilter(tc.filter)
		if err == nil || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("%q: error %v, want one naming %q", tc.filter, err, tc.names)
		}
	}
}

func TestMLflowSearchOrderBy(t *testing.T) {
	a := &searchRun{MetricValues: map[string]float64{"acc": 0.5}, Attrs: map[string]string{"run_name": "b"}, Times: map[string]float64{"start_time": 2}}
	b := &searchRun{MetricValues: map[string]float64{"acc": 0.9}, Attrs: map[string]string{"run_name": "a"}, Times: map[string]float64{"start_time": 1}}
	none := &searchRun{Attrs: map[string]string{}, Times: map[string]float64{}}
	for _, tc := range []struct {
		clause string
		want   int // compareRuns(a, b)
	}{
		{"metrics.acc DESC", 1},
		{"metrics.acc", -1},
		{"metrics.`acc` asc", -1},
		{"attributes.run_name", 1},
		{"start_time DESC", -1},
	} {
		o, err := runSearch.parseOrderBy([]string{tc.clause})
		if err != nil {
			t.Fatalf("%q: %v", tc.clause, err)
		}
		if got := compareRuns(a, b, o); got != tc.want {
			t.Errorf("%q: compare = %d, want %d", tc.clause, got, tc.want)
		}
		if o[0].Key.Entity == entityMetric && compareRuns(none, a, o) != 1 {
			t.Errorf("%q: a run without the metric is not last", tc.clause)
		}
	}
	for _, bad := range []string{"metrics.acc UP", "attributes.colour", "metrics.acc DESC x", ""} {
		if _, err := runSearch.parseOrderBy([]string{bad}); err == nil {
			t.Errorf("order_by %q was accepted", bad)
		}
	}
}
