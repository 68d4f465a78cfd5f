package sweep_test

import (
	"fmt"
	"math"
	"strconv"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/sweep"
)

func spec(t *testing.T, body string) api.SweepSpec {
	t.Helper()
	s, err := api.DecodeSweepSpecJSON([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGridMakesExactlyTheGrid(t *testing.T) {
	s := spec(t, `{"trial": {"command": ["x"]}, "objective": {"metric": "m", "goal": "minimize"},
		"sampling": {"type": "grid"},
		"search_space": {
			"opt": {"type": "choice", "values": ["adam", "sgd"]},
			"layers": {"type": "randint", "upper": 2},
			"drop": {"type": "quniform", "min_value": 0.1, "max_value": 0.3, "q": 0.1}}}`)
	smp, err := sweep.NewSampler(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range smp.Size() {
		p, err := smp.Trial(i)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s/%s/%s", p["drop"], p["layers"], p["opt"]))
	}
	var want []string
	for _, d := range []string{"0.1", "0.2", "0.3"} {
		for _, l := range []string{"0", "1"} {
			for _, o := range []string{"adam", "sgd"} {
				want = append(want, d+"/"+l+"/"+o)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("grid:\n got %v\nwant %v", got, want)
	}
	if _, err := smp.Trial(len(want)); err == nil {
		t.Error("a trial past the grid was given")
	}
}

func TestGridHonorsMaxTotalTrials(t *testing.T) {
	s := spec(t, `{"trial": {"command": ["x"]}, "objective": {"metric": "m", "goal": "minimize"},
		"sampling": {"type": "grid"}, "limits": {"max_total_trials": 3},
		"search_space": {"n": {"type": "randint", "upper": 10}}}`)
	smp, err := sweep.NewSampler(s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if smp.Size() != 3 {
		t.Errorf("size %d, want 3", smp.Size())
	}
}

const everyKind = `{"trial": {"command": ["x"]}, "objective": {"metric": "m", "goal": "minimize"},
	"sampling": {"type": "random", "seed": %d}, "limits": {"max_total_trials": 2000},
	"search_space": {
		"c": {"type": "choice", "values": ["a", 2, true]},
		"ri": {"type": "randint", "upper": 5},
		"u": {"type": "uniform", "min_value": -1, "max_value": 3},
		"qu": {"type": "quniform", "min_value": 0, "max_value": 1, "q": 0.1},
		"lu": {"type": "loguniform", "min_value": -4, "max_value": 0},
		"qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 2},
		"n": {"type": "normal", "mu": 10, "sigma": 2},
		"ln": {"type": "lognormal", "mu": 0, "sigma": 0.5}}}`

func TestRandomIsReproducible(t *testing.T) {
	trials := func(seed int64) []map[string]string {
		smp, err := sweep.NewSampler(spec(t, fmt.Sprintf(everyKind, seed)), seed)
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]string
		for i := range 5 {
			p, err := smp.Trial(i)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	a, b, c := trials(42), trials(42), trials(43)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the same seed gave other trials:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 42 and 43 gave the same trials: %v", a)
	}
	// Trial 3 alone, as a restarted gateway asks for it, is trial 3.
	smp, _ := sweep.NewSampler(spec(t, fmt.Sprintf(everyKind, 42)), 42)
	if p, _ := smp.Trial(3); fmt.Sprint(p) != fmt.Sprint(a[3]) {
		t.Errorf("trial 3 asked alone is %v, in order %v", p, a[3])
	}
}

func TestRandomDistributions(t *testing.T) {
	smp, err := sweep.NewSampler(spec(t, fmt.Sprintf(everyKind, 1)), 1)
	if err != nil {
		t.Fatal(err)
	}
	num := func(p map[string]string, k string) float64 {
		v, err := strconv.ParseFloat(p[k], 64)
		if err != nil {
			t.Fatalf("%s = %q is not a number", k, p[k])
		}
		return v
	}
	choices := map[string]int{}
	var sumN, sumLogLN float64
	for i := range smp.Size() {
		p, err := smp.Trial(i)
		if err != nil {
			t.Fatal(err)
		}
		choices[p["c"]]++
		if v := num(p, "ri"); v != math.Trunc(v) || v < 0 || v >= 5 {
			t.Fatalf("randint(5) gave %v", v)
		}
		if v := num(p, "u"); v < -1 || v > 3 {
			t.Fatalf("uniform(-1, 3) gave %v", v)
		}
		if v := num(p, "qu"); v < 0 || v > 1 || math.Abs(v*10-math.Round(v*10)) > 1e-9 {
			t.Fatalf("quniform(0, 1, 0.1) gave %v", v)
		}
		if v := num(p, "lu"); v < math.Exp(-4) || v > 1 {
			t.Fatalf("loguniform(-4, 0) gave %v", v)
		}
		if v := num(p, "qlu"); v < 0 || v > 20 || math.Mod(v, 2) != 0 {
			t.Fatalf("qloguniform(0, 3, 2) gave %v", v)
		}
		sumN += num(p, "n")
		v := num(p, "ln")
		if v <= 0 {
			t.Fatalf("lognormal gave %v", v)
		}
		sumLogLN += math.Log(v)
	}
	n := float64(smp.Size())
	if mean := sumN / n; math.Abs(mean-10) > 0.3 {
		t.Errorf("normal(10, 2)'s mean over %v draws is %v", n, mean)
	}
	if mean := sumLogLN / n; math.Abs(mean) > 0.1 {
		t.Errorf("lognormal(0, 0.5)'s log mean over %v draws is %v", n, mean)
	}
	for _, c := range []string{"a", "2", "true"} {
		if choices[c] < 500 {
			t.Errorf("choice %q drawn %d times of %v", c, choices[c], n)
		}
	}
}
