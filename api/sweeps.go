package api

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SweepSpec is the body of POST /v1/sweeps (and a spec file with `kind:
// sweep`): a hyperparameter search that runs its trial template once per
// sampled set of parameters. The names and arguments are Azure ML's, so that
// a sweep written for it reads the same here.
type SweepSpec struct {
	// Kind is "sweep" in a spec file, where it tells a sweep from a job;
	// optional in the API's body.
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name,omitempty"`
	Experiment string `json:"experiment,omitempty"`
	// Trial is the job each trial runs. A parameter reaches it as
	// {{ .params.NAME }} in its command and env, and as the job's params.
	Trial JobSpec `json:"trial"`
	// SearchSpace maps a parameter's name to its distribution.
	SearchSpace map[string]SearchParam `json:"search_space"`
	Sampling    Sampling               `json:"sampling"`
	Objective   Objective              `json:"objective"`
	// EarlyTermination, when set, stops trials that do worse than the
	// others as their metric points arrive.
	EarlyTermination *EarlyTermination `json:"early_termination,omitempty"`
	Limits           SweepLimits       `json:"limits,omitempty"`
}

// ParamKind is a search space distribution, named as Azure ML names it.
type ParamKind string

// The distributions a parameter may be drawn from.
const (
	// ParamChoice is one of values.
	ParamChoice ParamKind = "choice"
	// ParamRandint is a whole number in [0, upper).
	ParamRandint ParamKind = "randint"
	// ParamUniform is uniform in [min_value, max_value].
	ParamUniform ParamKind = "uniform"
	// ParamQuniform is round(uniform(min_value, max_value) / q) * q.
	ParamQuniform ParamKind = "quniform"
	// ParamLoguniform is exp(uniform(min_value, max_value)): the bounds are
	// exponents, as in Azure ML.
	ParamLoguniform ParamKind = "loguniform"
	// ParamQloguniform is round(exp(uniform(min_value, max_value)) / q) * q.
	ParamQloguniform ParamKind = "qloguniform"
	// ParamNormal is normal with mean mu and standard deviation sigma.
	ParamNormal ParamKind = "normal"
	// ParamLognormal is exp(normal(mu, sigma)).
	ParamLognormal ParamKind = "lognormal"
)

// ParamKinds are the distributions, in the order the docs list them.
func ParamKinds() []ParamKind {
	return []ParamKind{ParamChoice, ParamRandint, ParamUniform, ParamQuniform,
		ParamLoguniform, ParamQloguniform, ParamNormal, ParamLognormal}
}

// GridKind says whether grid sampling can enumerate the distribution: a
// finite set of values.
func (k ParamKind) GridKind() bool {
	return k == ParamChoice || k == ParamRandint || k == ParamQuniform
}

// SearchParam is one parameter's distribution; which arguments it takes
// depends on its type (see the ParamKind constants).
type SearchParam struct {
	Type ParamKind `json:"type"`
	// Values are choice's: strings, numbers or booleans.
	Values []any `json:"values,omitempty"`
	// Upper is randint's exclusive bound.
	Upper    *int     `json:"upper,omitempty"`
	MinValue *float64 `json:"min_value,omitempty"`
	MaxValue *float64 `json:"max_value,omitempty"`
	Q        *float64 `json:"q,omitempty"`
	Mu       *float64 `json:"mu,omitempty"`
	Sigma    *float64 `json:"sigma,omitempty"`
}

// SamplingType is how a sweep picks the parameters of its next trial.
type SamplingType string

// The sampling algorithms.
const (
	// SamplingGrid runs every combination of the (finite) search space.
	SamplingGrid SamplingType = "grid"
	// SamplingRandom draws each trial's parameters at random, from a seed:
	// the same seed gives the same trials.
	SamplingRandom SamplingType = "random"
	// SamplingBayesian draws each trial's parameters with TPE (the tree of
	// Parzen estimators, goptuna's) from the objective of the trials that
	// ended before it was made; the first few are random, and those are
	// reproducible from the seed.
	SamplingBayesian SamplingType = "bayesian"
)

// Sampling picks the trials' parameters.
type Sampling struct {
	Type SamplingType `json:"type"`
	// Seed makes random and bayesian sampling reproducible; when unset the gateway picks
	// one and the sweep shows it.
	Seed *int64 `json:"seed,omitempty"`
}

// Goal says which way the objective improves.
type Goal string

// The goals.
const (
	GoalMinimize Goal = "minimize"
	GoalMaximize Goal = "maximize"
)

// Objective is the metric the sweep optimizes, read from the trials'
// metric points.
type Objective struct {
	Metric string `json:"metric"`
	Goal   Goal   `json:"goal"`
}

// Better says whether a is better than b under g.
func (g Goal) Better(a, b float64) bool {
	if g == GoalMaximize {
		return a > b
	}
	return a < b
}

// PolicyType is an early termination rule.
type PolicyType string

// The early termination rules: Azure ML's three, and ASHA (asynchronous
// successive halving with promotion: each trial runs to a rung's budget and
// pauses; one in the best 1/reduction_factor of its rung resumes from its
// checkpoint with the next rung's budget).
const (
	PolicyMedianStopping PolicyType = "median_stopping"
	PolicyBandit         PolicyType = "bandit"
	PolicyTruncation     PolicyType = "truncation"
	PolicyASHA           PolicyType = "asha"
)

// EarlyTermination stops a trial that does worse than the others. Each
// metric point of the objective a trial reports is one interval; the rule
// is applied at every multiple of evaluation_interval that is at least
// delay_evaluation.
type EarlyTermination struct {
	Type PolicyType `json:"type"`
	// EvaluationInterval is how often the rule is applied, in intervals;
	// default 1.
	EvaluationInterval int `json:"evaluation_interval,omitempty"`
	// DelayEvaluation is the first interval the rule may be applied at.
	DelayEvaluation int `json:"delay_evaluation,omitempty"`
	// SlackFactor (bandit): a trial within this ratio of the best one goes
	// on.
	SlackFactor *float64 `json:"slack_factor,omitempty"`
	// SlackAmount (bandit): a trial within this distance of the best one
	// goes on.
	SlackAmount *float64 `json:"slack_amount,omitempty"`
	// TruncationPercentage (truncation): the share of the trials, the
	// worst ones, stopped at each evaluation; 1 to 99.
	TruncationPercentage int `json:"truncation_percentage,omitempty"`
	// ReductionFactor (asha) is eta: a trial goes on to the next rung
	// when it is in the best 1/eta of the trials that reached its rung;
	// default 3.
	ReductionFactor int `json:"reduction_factor,omitempty"`
	// MaxResource (asha) is a trial's whole budget, in intervals: the last
	// rung.
	MaxResource int `json:"max_resource,omitempty"`
}

// Rungs are asha's budgets, in intervals, ascending: delay_evaluation (at
// least 1) times reduction_factor to the k, below max_resource, then
// max_resource.
func (p *EarlyTermination) Rungs() []int {
	var out []int
	for r := max(p.DelayEvaluation, 1); r < p.MaxResource; r *= max(p.ReductionFactor, 2) {
		out = append(out, r)
	}
	return append(out, p.MaxResource)
}

// Interval says whether the rule applies at interval n (1 for a trial's
// first point).
func (p *EarlyTermination) Interval(n int) bool {
	every := max(p.EvaluationInterval, 1)
	return n >= 1 && n%every == 0 && n >= p.DelayEvaluation
}

// SweepLimits bound a sweep.
type SweepLimits struct {
	// MaxTotalTrials is how many trials the sweep runs; for grid sampling
	// it defaults to the grid's size, for random it is required.
	MaxTotalTrials int `json:"max_total_trials,omitempty"`
	// MaxConcurrentTrials is how many trials run at once; default 1.
	MaxConcurrentTrials int `json:"max_concurrent_trials,omitempty"`
	// TimeoutSeconds bounds the whole sweep: when it passes, the trials
	// still running are canceled.
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

// MaxSweepTrials bounds max_total_trials, and a grid's size.
const MaxSweepTrials = 10000

// SweepStatus is where a sweep stands.
type SweepStatus string

// The states of a sweep.
const (
	SweepRunning   SweepStatus = "running"
	SweepSucceeded SweepStatus = "succeeded"
	SweepFailed    SweepStatus = "failed"
	SweepCanceled  SweepStatus = "canceled"
)

// Sweep is GET /v1/sweeps/{id}.
type Sweep struct {
	ID        string      `json:"id"`
	Status    SweepStatus `json:"status"`
	Spec      SweepSpec   `json:"spec"`
	CreatedAt time.Time   `json:"created_at"`
	EndedAt   *time.Time  `json:"ended_at,omitempty"`
	// Seed is the random sampler's, the spec's or the one the gateway
	// picked.
	Seed int64 `json:"seed"`
	// Best is the trial with the best objective so far; absent until one
	// has reported it.
	Best   *SweepTrial  `json:"best,omitempty"`
	Trials []SweepTrial `json:"trials"`
}

// SweepTrial is one trial of a sweep.
type SweepTrial struct {
	// Index is the trial's place in the sampler's order, from 0.
	Index  int               `json:"index"`
	JobID  string            `json:"job_id"`
	Params map[string]string `json:"params"`
	State  Status            `json:"state"`
	// Metric is the objective's last point, Step its interval (how many
	// points it has reported), BestMetric the best of them.
	Metric     *float64 `json:"metric,omitempty"`
	BestMetric *float64 `json:"best_metric,omitempty"`
	Step       int      `json:"step,omitempty"`
	// Reason is why the trial ended: for an early termination Code
	// ReasonEarlyTerminated and the rule that fired in Detail.
	Reason *Reason `json:"reason,omitempty"`
	// Rung (asha) is the rung JobID runs to, from 0; Segments are the jobs
	// of the rungs before it, in order: JobID went on from their checkpoint.
	Rung     int      `json:"rung,omitempty"`
	Segments []string `json:"segments,omitempty"`
}

// SweepList is GET /v1/sweeps: a page of the workspace's sweeps, newest
// first.
type SweepList struct {
	Sweeps []SweepSummary `json:"sweeps"`
	// NextCursor fetches the next page; empty on the last one.
	NextCursor string `json:"next_cursor,omitempty"`
}

// SweepSummary is a sweep in a list: what it searches and how far it is,
// without its trials (GET /v1/sweeps/{id} has them, and the best one).
type SweepSummary struct {
	ID         string      `json:"id"`
	Name       string      `json:"name,omitempty"`
	Experiment string      `json:"experiment,omitempty"`
	Status     SweepStatus `json:"status"`
	Sampling   Sampling    `json:"sampling"`
	Objective  Objective   `json:"objective"`
	// Trials is how many trials the sweep has made so far, of
	// MaxTotalTrials.
	Trials         int        `json:"trials"`
	MaxTotalTrials int        `json:"max_total_trials"`
	CreatedAt      time.Time  `json:"created_at"`
	EndedAt        *time.Time `json:"ended_at,omitempty"`
}

// SweepTrials is GET /v1/sweeps/{id}/trials: the trials sorted by the
// objective, best first, those without a metric last.
type SweepTrials struct {
	Trials []SweepTrial `json:"trials"`
}

// DecodeSweepSpec reads a sweep spec written as JSON or YAML, on the terms
// of DecodeJobSpec (unknown fields, keys given twice and wrong kinds are
// refused with a *SpecError naming the field), and validates it.
func DecodeSweepSpec(data []byte) (SweepSpec, error) {
	var spec SweepSpec
	var err error
	if json.Valid(data) {
		err = decodeStrict(data, &spec, "sweep spec", false)
	} else {
		err = decodeYAMLStrict(data, &spec, "sweep spec")
	}
	if err != nil {
		return SweepSpec{}, err
	}
	if err := spec.Validate(); err != nil {
		return SweepSpec{}, err
	}
	return spec, nil
}

// DecodeSweepSpecJSON is DecodeSweepSpec for JSON only: the REST API's.
func DecodeSweepSpecJSON(data []byte) (SweepSpec, error) {
	var spec SweepSpec
	if err := decodeStrict(data, &spec, "sweep spec", false); err != nil {
		return SweepSpec{}, err
	}
	if err := spec.Validate(); err != nil {
		return SweepSpec{}, err
	}
	return spec, nil
}

// Validate checks what the decoder cannot: the arguments each
// distribution, sampler and rule takes, and fills in the defaults
// (evaluation_interval 1, max_concurrent_trials 1, a grid's size as
// max_total_trials). The trial template itself is the job service's to
// check, once its parameters are in. A refusal is a *SpecError naming the
// field.
func (s *SweepSpec) Validate() error {
	if s.Kind != "" && s.Kind != "sweep" {
		return fieldErr("kind must be \"sweep\" in a sweep spec, not %q", s.Kind)
	}
	if len(s.SearchSpace) == 0 {
		return fieldErr("search_space is required: map each parameter's name to its distribution")
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range s.SearchSpace {
			if !yield(n) {
				return
			}
		}
	})
	for _, name := range names {
		if !paramNameOK(name) {
			return fieldErr("search_space.%s: a parameter's name is 1-64 letters, digits or '_', starting with a letter (it is used as {{ .params.%s }})", name, name)
		}
		if err := s.SearchSpace[name].validate("search_space." + name); err != nil {
			return err
		}
	}
	switch s.Sampling.Type {
	case SamplingGrid:
		if s.Sampling.Seed != nil {
			return fieldErr("sampling.seed is random sampling's; grid sampling has no randomness")
		}
		size := 1
		for _, name := range names {
			p := s.SearchSpace[name]
			if !p.Type.GridKind() {
				return fieldErr("search_space.%s.type %s is continuous: grid sampling takes choice, randint and quniform only (use random sampling)", name, p.Type)
			}
			size *= p.GridSize()
			if size > MaxSweepTrials {
				return fieldErr("search_space: the grid has more than %d points", MaxSweepTrials)
			}
		}
		if s.Limits.MaxTotalTrials == 0 {
			s.Limits.MaxTotalTrials = size
		}
	case SamplingRandom:
		if s.Limits.MaxTotalTrials == 0 {
			return fieldErr("limits.max_total_trials is required with random sampling")
		}
	case SamplingBayesian:
		if s.Limits.MaxTotalTrials == 0 {
			return fieldErr("limits.max_total_trials is required with bayesian sampling")
		}
		for _, name := range names {
			if p := s.SearchSpace[name]; p.Type == ParamNormal || p.Type == ParamLognormal {
				return fieldErr("search_space.%s.type %s is unbounded: bayesian sampling (TPE) takes choice, randint, uniform, quniform, loguniform and qloguniform", name, p.Type)
			}
		}
	case "":
		return fieldErr("sampling.type is required: grid, random or bayesian")
	default:
		return fieldErr("sampling.type %q is not one of grid, random, bayesian", s.Sampling.Type)
	}
	if s.Objective.Metric == "" {
		return fieldErr("objective.metric is required: the metric the trials log, such as val_loss")
	}
	switch s.Objective.Goal {
	case GoalMinimize, GoalMaximize:
	case "":
		return fieldErr("objective.goal is required: minimize or maximize")
	default:
		return fieldErr("objective.goal %q is not minimize or maximize", s.Objective.Goal)
	}
	if p := s.EarlyTermination; p != nil {
		if err := p.validate(); err != nil {
			return err
		}
		if p.Type == PolicyASHA && !s.Trial.mentions(".budget") {
			return fieldErr("trial.command: with asha a trial runs to its rung's budget and stops, resuming from its checkpoint when promoted: take {{ .budget }} (the intervals to reach) in trial.command or trial.env")
		}
	}
	l := &s.Limits
	switch {
	case l.MaxTotalTrials < 0 || l.MaxTotalTrials > MaxSweepTrials:
		return fieldErr("limits.max_total_trials must be 1 to %d, not %d", MaxSweepTrials, l.MaxTotalTrials)
	case l.MaxConcurrentTrials < 0:
		return fieldErr("limits.max_concurrent_trials must be positive, not %d", l.MaxConcurrentTrials)
	case l.TimeoutSeconds < 0:
		return fieldErr("limits.timeout_seconds must be positive, not %d", l.TimeoutSeconds)
	}
	if l.MaxConcurrentTrials == 0 {
		l.MaxConcurrentTrials = 1
	}
	l.MaxConcurrentTrials = min(l.MaxConcurrentTrials, l.MaxTotalTrials)
	if s.Trial.ParentID != "" {
		return fieldErr("trial.parent_id is the sweep's to set; leave it out")
	}
	return nil
}

func paramNameOK(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i, r := range name {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || r != '_' && (r < '0' || r > '9')) {
			return false
		}
	}
	return true
}

// GridSize is how many values grid sampling takes from p (a GridKind).
func (p SearchParam) GridSize() int {
	switch p.Type {
	case ParamChoice:
		return len(p.Values)
	case ParamRandint:
		return *p.Upper
	case ParamQuniform:
		return len(p.QuniformGrid())
	}
	return 0
}

// QuniformGrid is every value quniform(min_value, max_value, q) can take,
// ascending.
func (p SearchParam) QuniformGrid() []float64 {
	lo, hi, q := *p.MinValue, *p.MaxValue, *p.Q
	var out []float64
	for k := math.Round(lo / q); k <= math.Round(hi/q) && len(out) <= MaxSweepTrials; k++ {
		out = append(out, k*q)
	}
	return out
}

// args lists which arguments each distribution takes.
var paramArgs = map[ParamKind][]string{
	ParamChoice:      {"values"},
	ParamRandint:     {"upper"},
	ParamUniform:     {"min_value", "max_value"},
	ParamQuniform:    {"min_value", "max_value", "q"},
	ParamLoguniform:  {"min_value", "max_value"},
	ParamQloguniform: {"min_value", "max_value", "q"},
	ParamNormal:      {"mu", "sigma"},
	ParamLognormal:   {"mu", "sigma"},
}

func (p SearchParam) validate(path string) error {
	want, known := paramArgs[p.Type]
	if !known {
		kinds := make([]string, 0, len(paramArgs))
		for _, k := range ParamKinds() {
			kinds = append(kinds, string(k))
		}
		if p.Type == "" {
			return fieldErr("%s.type is required: one of %s", path, strings.Join(kinds, ", "))
		}
		return fieldErr("%s.type %q is not one of %s", path, p.Type, strings.Join(kinds, ", "))
	}
	given := map[string]bool{
		"values": p.Values != nil, "upper": p.Upper != nil, "min_value": p.MinValue != nil,
		"max_value": p.MaxValue != nil, "q": p.Q != nil, "mu": p.Mu != nil, "sigma": p.Sigma != nil,
	}
	for _, arg := range []string{"values", "upper", "min_value", "max_value", "q", "mu", "sigma"} {
		if given[arg] && !slices.Contains(want, arg) {
			return fieldErr("%s.%s is not an argument of %s (it takes %s)", path, arg, p.Type, strings.Join(want, ", "))
		}
	}
	for _, arg := range want {
		if !given[arg] {
			return fieldErr("%s.%s is required by %s (it takes %s)", path, arg, p.Type, strings.Join(want, ", "))
		}
	}
	for _, f := range []struct {
		name string
		v    *float64
	}{{"min_value", p.MinValue}, {"max_value", p.MaxValue}, {"q", p.Q}, {"mu", p.Mu}, {"sigma", p.Sigma}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return fieldErr("%s.%s must be a finite number", path, f.name)
		}
	}
	switch p.Type {
	case ParamChoice:
		if len(p.Values) == 0 {
			return fieldErr("%s.values must hold at least one value", path)
		}
		seen := map[string]bool{}
		for i, v := range p.Values {
			s, ok := FormatParam(v)
			if !ok {
				return fieldErr("%s.values[%d] must be a string, number or boolean", path, i)
			}
			if seen[s] {
				return fieldErr("%s.values[%d] %q is given twice", path, i, s)
			}
			seen[s] = true
		}
	case ParamRandint:
		if *p.Upper < 1 {
			return fieldErr("%s.upper must be at least 1 (randint draws from [0, upper)), not %d", path, *p.Upper)
		}
	default:
		if p.MinValue != nil && *p.MinValue > *p.MaxValue {
			return fieldErr("%s.min_value %v is above max_value %v", path, *p.MinValue, *p.MaxValue)
		}
		if p.Q != nil && *p.Q <= 0 {
			return fieldErr("%s.q must be above 0, not %v", path, *p.Q)
		}
		if p.Sigma != nil && *p.Sigma <= 0 {
			return fieldErr("%s.sigma must be above 0, not %v", path, *p.Sigma)
		}
		if p.Type == ParamLoguniform || p.Type == ParamQloguniform {
			if *p.MaxValue > 700 {
				return fieldErr("%s.max_value %v is an exponent (the values are exp(uniform(min_value, max_value))); exp of it overflows", path, *p.MaxValue)
			}
		}
	}
	return nil
}

// FormatParam is a parameter value as a trial sees it, in its params and
// in {{ .params.NAME }}: a number in its shortest form.
func FormatParam(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), true
	case int:
		return strconv.Itoa(v), true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

func (p *EarlyTermination) validate() error {
	switch {
	case p.EvaluationInterval < 0:
		return fieldErr("early_termination.evaluation_interval must be positive, not %d", p.EvaluationInterval)
	case p.DelayEvaluation < 0:
		return fieldErr("early_termination.delay_evaluation must be positive, not %d", p.DelayEvaluation)
	}
	if p.EvaluationInterval == 0 {
		p.EvaluationInterval = 1
	}
	only := func(field string, set bool, of PolicyType) error {
		if set && p.Type != of {
			return fieldErr("early_termination.%s is %s's; %s does not take it", field, of, p.Type)
		}
		return nil
	}
	for _, err := range []error{
		only("slack_factor", p.SlackFactor != nil, PolicyBandit),
		only("slack_amount", p.SlackAmount != nil, PolicyBandit),
		only("truncation_percentage", p.TruncationPercentage != 0, PolicyTruncation),
		only("reduction_factor", p.ReductionFactor != 0, PolicyASHA),
		only("max_resource", p.MaxResource != 0, PolicyASHA),
	} {
		if err != nil {
			return err
		}
	}
	switch p.Type {
	case PolicyMedianStopping:
	case PolicyBandit:
		switch {
		case (p.SlackFactor == nil) == (p.SlackAmount == nil):
			return fieldErr("early_termination: bandit takes one of slack_factor and slack_amount")
		case p.SlackFactor != nil && !(*p.SlackFactor > 0 && !math.IsInf(*p.SlackFactor, 0)):
			return fieldErr("early_termination.slack_factor must be above 0")
		case p.SlackAmount != nil && !(*p.SlackAmount >= 0 && !math.IsInf(*p.SlackAmount, 0)):
			return fieldErr("early_termination.slack_amount must be 0 or more")
		}
	case PolicyTruncation:
		if p.TruncationPercentage < 1 || p.TruncationPercentage > 99 {
			return fieldErr("early_termination.truncation_percentage must be 1 to 99, not %d", p.TruncationPercentage)
		}
	case PolicyASHA:
		if p.ReductionFactor == 0 {
			p.ReductionFactor = 3
		}
		switch {
		case p.ReductionFactor < 2:
			return fieldErr("early_termination.reduction_factor must be at least 2, not %d", p.ReductionFactor)
		case p.MaxResource == 0:
			return fieldErr("early_termination.max_resource is required by asha: a trial's whole budget, in intervals (points of the objective)")
		case p.MaxResource <= max(p.DelayEvaluation, 1) || p.MaxResource > 1<<20:
			return fieldErr("early_termination.max_resource %d must be above the first rung %d (delay_evaluation, at least 1), and at most %d", p.MaxResource, max(p.DelayEvaluation, 1), 1<<20)
		case p.EvaluationInterval > 1:
			return fieldErr("early_termination.evaluation_interval is not asha's: its rungs are delay_evaluation times reduction_factor to the k")
		}
	case "":
		return fieldErr("early_termination.type is required: median_stopping, bandit, truncation or asha")
	default:
		return fieldErr("early_termination.type %q is not one of median_stopping, bandit, truncation, asha", p.Type)
	}
	return nil
}

// String is the rule as a trial's reason detail names it.
func (p *EarlyTermination) String() string {
	switch p.Type {
	case PolicyBandit:
		if p.SlackFactor != nil {
			return fmt.Sprintf("bandit (slack_factor %v)", *p.SlackFactor)
		}
		return fmt.Sprintf("bandit (slack_amount %v)", *p.SlackAmount)
	case PolicyTruncation:
		return fmt.Sprintf("truncation (%d%%)", p.TruncationPercentage)
	}
	return string(p.Type)
}

// mentions says whether the template's command or env holds s.
func (j JobSpec) mentions(s string) bool {
	for _, a := range j.Command {
		if strings.Contains(a, s) {
			return true
		}
	}
	for _, v := range j.Env {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}
