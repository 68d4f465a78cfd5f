package sweep

import (
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/tpe"

	"github.com/jobgate/jobgate/api"
)

// Observation is one ended trial as bayesian sampling learns from it.
type Observation struct {
	Params map[string]string
	// Value is the objective of a trial that ran to its end: the best
	// point it reported, as the sweep ranks trials.
	Value float64
	// Stopped says the sweep stopped the trial early; Points are then what
	// it reported until it was stopped, which TPE weighs as a pruned trial
	// (worse than any trial that ran to its end, ranked among the stopped
	// ones by how far it got).
	Stopped bool
	Points  []float64
}

// startupTrials is how many trials TPE draws at random before it models
// the results: Optuna's 10, or a third of a smaller sweep (at least 2), so
// that a sweep of 12 trials still spends most of them on the model.
func startupTrials(total int) int {
	return max(2, min(10, total/3))
}

// bayesianTrial is trial i's parameters under TPE (goptuna's, which follows
// Optuna's), from the trials that ended before it was made: a fresh study
// holds the history, and the sampler is seeded from the sweep's seed and i.
// The random first trials are random sampling's, reproducible from the
// seed; the model's
// draws are not (goptuna's mixture sampling reads math/rand's global
// source), so Controller.decide records each trial's parameters before its
// job is made, and nothing depends on drawing them again.
func (s *Sampler) bayesianTrial(i int, history []Observation) (map[string]string, error) {
	if len(history) < startupTrials(s.size) {
		// Until the model has enough to go on, trials are random
		// sampling's own (goptuna's random start is not seeded throughout).
		return s.randomTrial(i), nil
	}
	dir := goptuna.StudyDirectionMinimize
	if s.spec.Objective.Goal == api.GoalMaximize {
		dir = goptuna.StudyDirectionMaximize
	}
	seed := int64(rand.New(rand.NewPCG(uint64(s.seed), uint64(i))).Uint64() >> 1)
	sampler := tpe.NewSampler(tpe.SamplerOptionSeed(seed), tpe.SamplerOptionNumberOfStartupTrials(startupTrials(s.size)))
	study, err := goptuna.CreateStudy("sweep",
		goptuna.StudyOptionDirection(dir),
		goptuna.StudyOptionSampler(sampler),
		goptuna.StudyOptionLogger(&goptuna.StdLogger{Logger: log.New(io.Discard, "", 0)}))
	if err != nil {
		return nil, fmt.Errorf("bayesian sampling: %w", err)
	}
	dists := make(map[string]any, len(s.names))
	for _, name := range s.names {
		dists[name] = tpeDistribution(s.spec.SearchSpace[name])
	}
	for _, o := range history {
		ft, ok := s.frozen(o, dists)
		if !ok {
			continue // a parameter the search space no longer gives
		}
		if _, err := study.Storage.CloneTrial(study.ID, ft); err != nil {
			return nil, fmt.Errorf("bayesian sampling: %w", err)
		}
	}
	trialID, err := study.Storage.CreateNewTrial(study.ID)
	if err != nil {
		return nil, fmt.Errorf("bayesian sampling: %w", err)
	}
	trial, err := study.Storage.GetTrial(trialID)
	if err != nil {
		return nil, fmt.Errorf("bayesian sampling: %w", err)
	}
	out := make(map[string]string, len(s.names))
	for _, name := range s.names {
		v, err := sampler.Sample(study, trial, name, dists[name])
		if err != nil {
			return nil, fmt.Errorf("bayesian sampling of %s: %w", name, err)
		}
		out[name] = external(s.spec.SearchSpace[name], v)
	}
	return out, nil
}

// frozen is o as goptuna keeps a finished trial.
func (s *Sampler) frozen(o Observation, dists map[string]any) (goptuna.FrozenTrial, bool) {
	ft := goptuna.FrozenTrial{
		State:              goptuna.TrialStateComplete,
		Value:              o.Value,
		IntermediateValues: map[int]float64{},
		InternalParams:     map[string]float64{},
		Params:             map[string]any{},
		Distributions:      map[string]any{},
		UserAttrs:          map[string]string{},
		SystemAttrs:        map[string]string{},
	}
	if o.Stopped {
		ft.State = goptuna.TrialStatePruned
		for k, v := range o.Points {
			ft.IntermediateValues[k+1] = v
		}
	}
	for _, name := range s.names {
		v, ok := internal(s.spec.SearchSpace[name], o.Params[name])
		if !ok {
			return ft, false
		}
		ft.InternalParams[name] = v
		ft.Distributions[name] = dists[name]
	}
	return ft, true
}

// tpeDistribution is p as goptuna's TPE samples it. qloguniform is drawn
// log-uniform and rounded after, as goptuna has no quantized log
// distribution; normal and lognormal are refused by Validate (TPE needs
// bounds).
func tpeDistribution(p api.SearchParam) any {
	switch p.Type {
	case api.ParamChoice:
		choices := make([]string, len(p.Values))
		for i, v := range p.Values {
			choices[i], _ = api.FormatParam(v)
		}
		return goptuna.CategoricalDistribution{Choices: choices}
	case api.ParamRandint:
		return goptuna.IntUniformDistribution{Low: 0, High: *p.Upper - 1}
	case api.ParamQuniform:
		grid := p.QuniformGrid()
		return goptuna.DiscreteUniformDistribution{Low: grid[0], High: grid[len(grid)-1], Q: *p.Q}
	case api.ParamLoguniform, api.ParamQloguniform:
		return goptuna.LogUniformDistribution{Low: math.Exp(*p.MinValue), High: math.Exp(*p.MaxValue)}
	}
	return goptuna.UniformDistribution{Low: *p.MinValue, High: *p.MaxValue}
}

// external is goptuna's value v of p as a trial sees it.
func external(p api.SearchParam, v float64) string {
	switch p.Type {
	case api.ParamChoice:
		s, _ := api.FormatParam(p.Values[int(v)])
		return s
	case api.ParamRandint:
		return strconv.Itoa(int(v))
	case api.ParamQuniform, api.ParamQloguniform:
		return quantized(math.Round(v / *p.Q) * *p.Q)
	}
	return format(v)
}

// internal is a trial's value of p as goptuna holds it; false when it is
// not one p gives.
func internal(p api.SearchParam, s string) (float64, bool) {
	if p.Type == api.ParamChoice {
		for i, v := range p.Values {
			if f, _ := api.FormatParam(v); f == s {
				return float64(i), true
			}
		}
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	if p.Type == api.ParamRandint && (v < 0 || v >= float64(*p.Upper) || v != math.Trunc(v)) {
		return 0, false
	}
	return v, true
}
