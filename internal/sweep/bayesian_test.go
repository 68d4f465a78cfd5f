package sweep

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

func bayesSpec(t *testing.T, space string, total int) api.SweepSpec {
	t.Helper()
	spec, err := api.DecodeSweepSpecJSON([]byte(fmt.Sprintf(`{"trial": {"image": "localhost/x:1", "command": ["train"]},
		"sampling": {"type": "bayesian", "seed": 7}, "search_space": %s,
		"objective": {"metric": "loss", "goal": "minimize"}, "limits": {"max_total_trials": %d}}`, space, total)))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

// run plays a sequential sweep of total trials against loss, each trial
// seeing the ones before it, and returns each trial's x.
func run(t *testing.T, smp *Sampler, total int, loss func(map[string]string) float64) []map[string]string {
	t.Helper()
	var history []Observation
	var out []map[string]string
	for i := range total {
		p, err := smp.TrialAfter(i, history)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
		history = append(history, Observation{Params: p, Value: loss(p)})
	}
	return out
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestBayesianLearnsTheMinimum: after its random start, TPE draws closer to
// a quadratic's minimum than random sampling does over the same trials,
// with the same seed. Both are deterministic, so this cannot flake; it
// fails if the history does not reach the model.
func TestBayesianLearnsTheMinimum(t *testing.T) {
	const total = 60
	space := `{"x": {"type": "uniform", "min_value": 0, "max_value": 1}}`
	loss := func(p map[string]string) float64 { x := num(t, p["x"]); return (x - 0.7) * (x - 0.7) }
	spec := bayesSpec(t, space, total)
	smp, err := NewSampler(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	tpe := run(t, smp, total, loss)
	spec.Sampling.Type = api.SamplingRandom
	rnd, err := NewSampler(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	random := run(t, rnd, total, loss)
	start := startupTrials(total)
	dist := func(ps []map[string]string) float64 {
		var sum float64
		for _, p := range ps[start:] {
			sum += math.Abs(num(t, p["x"]) - 0.7)
		}
		return sum / float64(len(ps)-start)
	}
	d, r := dist(tpe), dist(random)
	t.Logf("mean distance to the minimum after the random start: TPE %.3f, random %.3f", d, r)
	if d >= 0.75*r {
		t.Errorf("after %d random trials TPE's mean distance to the minimum is %.3f, random's %.3f: TPE does not learn", start, d, r)
	}
}

// TestBayesianStartIsReproducible: the random first trials are a function
// of the seed and the index, whatever the history. (The model's draws are
// not: goptuna's mixture sampling reads the process's global random
// source, which is why Controller.decide records each trial's parameters
// before its job is made.)
func TestBayesianStartIsReproducible(t *testing.T) {
	spec := bayesSpec(t, `{"x": {"type": "uniform", "min_value": 0, "max_value": 1}, "k": {"type": "choice", "values": ["a", "b", 3]}}`, 30)
	smp, err := NewSampler(spec, 7)
	if err != nil {
		t.Fatal(err)
	}
	var history []Observation
	for i := range startupTrials(30) {
		a, err := smp.TrialAfter(i, history)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := NewSampler(spec, 7)
		b, _ := again.TrialAfter(i, nil)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("trial %d: %v, then %v", i, a, b)
		}
		history = append(history, Observation{Params: a, Value: num(t, a["x"])})
	}
	other, _ := NewSampler(spec, 8)
	a, _ := smp.Trial(0)
	b, _ := other.Trial(0)
	if fmt.Sprint(a) == fmt.Sprint(b) {
		t.Errorf("seeds 7 and 8 both start with %v", a)
	}
}

// TestBayesianValuesAreTheSpaces: each distribution's values, as a trial
// sees them, before and after the model takes over.
func TestBayesianValuesAreTheSpaces(t *testing.T) {
	spec := bayesSpec(t, `{
		"c": {"type": "choice", "values": ["adam", 0.5, true]},
		"r": {"type": "randint", "upper": 4},
		"u": {"type": "uniform", "min_value": -1, "max_value": 1},
		"q": {"type": "quniform", "min_value": 0, "max_value": 1, "q": 0.25},
		"l": {"type": "loguniform", "min_value": -5, "max_value": 0},
		"ql": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2}}`, 30)
	smp, err := NewSampler(spec, 3)
	if err != nil {
		t.Fatal(err)
	}
	ps := run(t, smp, 30, func(p map[string]string) float64 { return num(t, p["u"]) + num(t, p["r"]) })
	for i, p := range ps {
		if c := p["c"]; c != "adam" && c != "0.5" && c != "true" {
			t.Errorf("trial %d: c = %q", i, c)
		}
		if r := num(t, p["r"]); r < 0 || r > 3 || r != math.Trunc(r) {
			t.Errorf("trial %d: r = %v", i, r)
		}
		if u := num(t, p["u"]); u < -1 || u > 1 {
			t.Errorf("trial %d: u = %v", i, u)
		}
		if q := num(t, p["q"]); q < 0 || q > 1 || math.Mod(q, 0.25) != 0 {
			t.Errorf("trial %d: q = %v", i, q)
		}
		if l := num(t, p["l"]); l < math.Exp(-5) || l > 1 {
			t.Errorf("trial %d: l = %v", i, l)
		}
		if ql := num(t, p["ql"]); math.Mod(ql, 2) != 0 || ql > math.Exp(3)+1 {
			t.Errorf("trial %d: ql = %v", i, ql)
		}
	}
	// An observation whose value the space does not give is left out, not
	// an error.
	if _, err := smp.TrialAfter(29, []Observation{{Params: map[string]string{"c": "nope"}, Value: 1}}); err != nil {
		t.Errorf("a foreign observation: %v", err)
	}
}

func TestBayesianRefusals(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`"search_space": {"x": {"type": "normal", "mu": 0, "sigma": 1}}, "limits": {"max_total_trials": 4}`, "search_space.x.type normal is unbounded"},
		{`"search_space": {"x": {"type": "uniform", "min_value": 0, "max_value": 1}}`, "limits.max_total_trials is required with bayesian"},
	} {
		var raw map[string]any
		body := `{"trial": {"image": "localhost/x:1"}, "sampling": {"type": "bayesian"}, "objective": {"metric": "m", "goal": "minimize"}, ` + tc.body + `}`
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatal(err)
		}
		_, err := api.DecodeSweepSpecJSON([]byte(body))
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.body, err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
