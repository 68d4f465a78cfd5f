package main

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/api"
)

// TestParseDeploymentSpec: `jobgate deploy -f` reads YAML and JSON alike,
// strictly.
func TestParseDeploymentSpec(t *testing.T) {
	two := 2
	want := api.DeploymentSpec{Name: "iris", Model: "iris@production", Image: "localhost/jobgate-examples:latest",
		Command: []string{"/bin/modelserver"}, Env: map[string]string{"LOG": "on"}, Replicas: &two}
	yml := `name: iris
model: iris@production
image: localhost/jobgate-examples:latest
command: [/bin/modelserver]
env:
  LOG: "on"
replicas: 2
`
	jsn := `{"name":"iris","model":"iris@production","image":"localhost/jobgate-examples:latest","command":["/bin/modelserver"],"env":{"LOG":"on"},"replicas":2}`
	for name, in := range map[string]string{"yaml": yml, "json": jsn} {
		got, err := parseDeploymentSpec([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	auto, err := parseDeploymentSpec([]byte("name: a\nmodel: iris:1\nimage: localhost/x:1\ncommand: [x]\nautoscale: {min: 0, max: 4, target_concurrency: 8, scale_down_delay_seconds: 120}\n"))
	if err != nil || auto.Autoscale == nil || auto.Autoscale.Max != 4 || auto.Autoscale.ScaleDownDelaySeconds != 120 {
		t.Fatalf("autoscale: %+v, %v", auto.Autoscale, err)
	}
	if _, err := parseDeploymentSpec([]byte("name: iris\nreplica: 2\n")); err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("unknown field: %v, want an error naming it", err)
	}
}
