// Package sweep runs hyperparameter sweeps. Its arithmetic is pure: the
// samplers that pick each trial's parameters and the early termination
// rules that stop a trial are functions of the spec, a seed and the metric
// points recorded. The Controller keeps their inputs in Redis, so a
// restarted gateway asks the same questions and gets the same answers.
package sweep

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/jobgate/jobgate/api"
)

// Sampler gives trial i's parameters. It holds no state between calls:
// trial i's parameters are a function of the spec, the seed and i alone,
// so the sweep's sampler state is its seed and the next index.
type Sampler struct {
	spec  api.SweepSpec
	seed  int64
	names []string   // the search space's names, sorted
	grid  [][]string // grid sampling: each name's values, in order
	size  int
}

// NewSampler makes the sampler of a validated spec (api.SweepSpec.Validate).
func NewSampler(spec api.SweepSpec, seed int64) (*Sampler, error) {
	s := &Sampler{spec: spec, seed: seed}
	for name := range spec.SearchSpace {
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	switch spec.Sampling.Type {
	case api.SamplingGrid:
		s.size = 1
		for _, name := range s.names {
			vals, err := gridValues(spec.SearchSpace[name])
			if err != nil {
				return nil, fmt.Errorf("search_space.%s: %w", name, err)
			}
			s.grid = append(s.grid, vals)
			s.size *= len(vals)
		}
		s.size = min(s.size, spec.Limits.MaxTotalTrials)
	case api.SamplingRandom, api.SamplingBayesian:
		s.size = spec.Limits.MaxTotalTrials
	default:
		return nil, fmt.Errorf("sampling.type %q has no sampler", spec.Sampling.Type)
	}
	return s, nil
}

// Size is how many trials the sampler gives: a grid's points (up to
// max_total_trials), or max_total_trials.
func (s *Sampler) Size() int { return s.size }

// Learns says whether a trial's parameters depend on how the trials made
// before it did (bayesian sampling): then they are decided, and kept in
// the sweep's record, before the trial's job is made.
func (s *Sampler) Learns() bool { return s.spec.Sampling.Type == api.SamplingBayesian }

// Trial is trial i's parameters, each as the trial sees it
// (api.FormatParam), without a history: bayesian sampling's first trials.
func (s *Sampler) Trial(i int) (map[string]string, error) { return s.TrialAfter(i, nil) }

// TrialAfter is trial i's parameters given the trials that ended before
// it; grid and random sampling ignore them.
func (s *Sampler) TrialAfter(i int, history []Observation) (map[string]string, error) {
	if i < 0 || i >= s.size {
		return nil, fmt.Errorf("trial %d is outside the sweep's %d", i, s.size)
	}
	if s.Learns() {
		return s.bayesianTrial(i, history)
	}
	out := make(map[string]string, len(s.names))
	if s.grid != nil {
		// The first name varies slowest, as nested loops in name order.
		rest := i
		for k := len(s.names) - 1; k >= 0; k-- {
			vals := s.grid[k]
			out[s.names[k]] = vals[rest%len(vals)]
			rest /= len(vals)
		}
		return out, nil
	}
	return s.randomTrial(i), nil
}

// randomTrial is random sampling's trial i.
func (s *Sampler) randomTrial(i int) map[string]string {
	out := make(map[string]string, len(s.names))
	// One stream per trial, so that trial i does not depend on how many
	// draws the earlier ones took.
	r := rand.New(rand.NewPCG(uint64(s.seed), uint64(i)))
	for _, name := range s.names {
		out[name] = draw(s.spec.SearchSpace[name], r)
	}
	return out
}

func gridValues(p api.SearchParam) ([]string, error) {
	switch p.Type {
	case api.ParamChoice:
		out := make([]string, len(p.Values))
		for i, v := range p.Values {
			s, ok := api.FormatParam(v)
			if !ok {
				return nil, fmt.Errorf("values[%d] is not a string, number or boolean", i)
			}
			out[i] = s
		}
		return out, nil
	case api.ParamRandint:
		out := make([]string, *p.Upper)
		for i := range out {
			out[i] = strconv.Itoa(i)
		}
		return out, nil
	case api.ParamQuniform:
		var out []string
		for _, v := range p.QuniformGrid() {
			out = append(out, quantized(v))
		}
		return out, nil
	}
	return nil, fmt.Errorf("type %s is continuous; grid sampling cannot enumerate it", p.Type)
}

// draw is one value of p.
func draw(p api.SearchParam, r *rand.Rand) string {
	uniform := func() float64 { return *p.MinValue + r.Float64()*(*p.MaxValue-*p.MinValue) }
	normal := func() float64 { return *p.Mu + *p.Sigma*r.NormFloat64() }
	quantize := func(v float64) string { return quantized(math.Round(v / *p.Q) * *p.Q) }
	switch p.Type {
	case api.ParamChoice:
		s, _ := api.FormatParam(p.Values[r.IntN(len(p.Values))])
		return s
	case api.ParamRandint:
		return strconv.Itoa(r.IntN(*p.Upper))
	case api.ParamUniform:
		return format(uniform())
	case api.ParamQuniform:
		return quantize(uniform())
	case api.ParamLoguniform:
		return format(math.Exp(uniform()))
	case api.ParamQloguniform:
		return quantize(math.Exp(uniform()))
	case api.ParamNormal:
		return format(normal())
	case api.ParamLognormal:
		return format(math.Exp(normal()))
	}
	return ""
}

func format(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// quantized formats a multiple of q without the float noise of k*q
// (0.30000000000000004 is 0.3).
func quantized(v float64) string {
	s := strconv.FormatFloat(v, 'g', 12, 64)
	f, _ := strconv.ParseFloat(s, 64)
	if f == 0 {
		return "0" // not -0
	}
	return format(f)
}
