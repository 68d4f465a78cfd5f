package api_test

import (
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

const gridSweep = `{
  "trial": {"image": "localhost/jobgate-examples:latest", "command": ["train", "--lr", "{{ .params.lr }}"]},
  "search_space": {
    "lr": {"type": "choice", "values": [0.1, 0.01]},
    "layers": {"type": "randint", "upper": 3},
    "dropout": {"type": "quniform", "min_value": 0, "max_value": 0.5, "q": 0.25}
  },
  "sampling": {"type": "grid"},
  "objective": {"metric": "val_loss", "goal": "minimize"},
  "early_termination": {"type": "median_stopping", "delay_evaluation": 2},
  "limits": {"max_concurrent_trials": 20}
}`

func TestDecodeSweepSpecDefaults(t *testing.T) {
	spec, err := api.DecodeSweepSpecJSON([]byte(gridSweep))
	if err != nil {
		t.Fatal(err)
	}
	// 2 choices x 3 whole numbers x 3 steps of 0.25.
	if got := spec.Limits.MaxTotalTrials; got != 18 {
		t.Errorf("max_total_trials defaults to the grid's size 18, got %d", got)
	}
	if got := spec.Limits.MaxConcurrentTrials; got != 18 {
		t.Errorf("max_concurrent_trials is capped by max_total_trials 18, got %d", got)
	}
	if got := spec.EarlyTermination.EvaluationInterval; got != 1 {
		t.Errorf("evaluation_interval defaults to 1, got %d", got)
	}
}

func TestDecodeSweepSpecYAML(t *testing.T) {
	spec, err := api.DecodeSweepSpec([]byte(`kind: sweep
trial:
  image: localhost/jobgate-examples:latest
  command: [train, --lr, "{{ .params.lr }}"]
search_space:
  lr: {type: loguniform, min_value: -9, max_value: -2}
sampling: {type: random, seed: 7}
objective: {metric: val_loss, goal: minimize}
early_termination: {type: bandit, slack_factor: 0.1, evaluation_interval: 2}
limits: {max_total_trials: 10, max_concurrent_trials: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	if *spec.Sampling.Seed != 7 || spec.Limits.MaxTotalTrials != 10 || *spec.EarlyTermination.SlackFactor != 0.1 {
		t.Errorf("decoded %+v", spec)
	}
}

func TestDecodeSweepSpecRefusals(t *testing.T) {
	base := `"trial": {"command": ["x"]}, "objective": {"metric": "m", "goal": "minimize"}`
	tests := []struct {
		name, body, want string
	}{
		{"unknown field", `{` + base + `, "search_space": {"x": {"type": "uniform", "min": 0, "max_value": 1}}, "sampling": {"type": "random"}, "limits": {"max_total_trials": 2}}`,
			`unknown field "search_space.x.min"`},
		{"continuous under grid", `{` + base + `, "search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}}, "sampling": {"type": "grid"}}`,
			"search_space.x.type uniform is continuous"},
		{"argument of another kind", `{` + base + `, "search_space": {"x": {"type": "normal", "mu": 0, "sigma": 1, "q": 1}}, "sampling": {"type": "random"}, "limits": {"max_total_trials": 2}}`,
			"search_space.x.q is not an argument of normal"},
		{"missing argument", `{` + base + `, "search_space": {"x": {"type": "quniform", "min_value": 0, "max_value": 1}}, "sampling": {"type": "grid"}}`,
			"search_space.x.q is required by quniform"},
		{"unknown kind", `{` + base + `, "search_space": {"x": {"type": "gaussian"}}, "sampling": {"type": "grid"}}`,
			`search_space.x.type "gaussian" is not one of choice, randint`},
		{"random without a total", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "random"}}`,
			"limits.max_total_trials is required"},
		{"bandit without slack", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "bandit"}}`,
			"bandit takes one of slack_factor and slack_amount"},
		{"slack on median", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "median_stopping", "slack_amount": 1}}`,
			"early_termination.slack_amount is bandit's"},
		{"truncation out of range", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "truncation", "truncation_percentage": 100}}`,
			"early_termination.truncation_percentage must be 1 to 99"},
		{"asha without a budget", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "asha"}}`,
			"early_termination.max_resource is required by asha"},
		{"asha budget not taken", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "asha", "max_resource": 9}}`,
			"trial.command: with asha"},
		{"asha eta 1", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "asha", "max_resource": 9, "reduction_factor": 1}}`,
			"early_termination.reduction_factor must be at least 2"},
		{"asha max at the first rung", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "asha", "max_resource": 3, "delay_evaluation": 3}}`,
			"early_termination.max_resource 3 must be above the first rung 3"},
		{"eta on bandit", `{` + base + `, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}, "early_termination": {"type": "bandit", "slack_amount": 1, "reduction_factor": 3}}`,
			"early_termination.reduction_factor is asha's"},
		{"bad goal", `{"trial": {"command": ["x"]}, "objective": {"metric": "m", "goal": "lower"}, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}}`,
			`objective.goal "lower"`},
		{"choice twice", `{` + base + `, "search_space": {"x": {"type": "choice", "values": [1, 1.0]}}, "sampling": {"type": "grid"}}`,
			"search_space.x.values[1]"},
		{"a parent", `{"trial": {"command": ["x"], "parent_id": "j"}, "objective": {"metric": "m", "goal": "minimize"}, "search_space": {"x": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}}`,
			"trial.parent_id"},
		{"bad name", `{` + base + `, "search_space": {"a-b": {"type": "randint", "upper": 4}}, "sampling": {"type": "grid"}}`,
			"search_space.a-b"},
		{"not an object", `[1]`, "sweep spec must be a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := api.DecodeSweepSpecJSON([]byte(tt.body))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
