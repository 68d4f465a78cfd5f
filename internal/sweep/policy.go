package sweep

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/jobgate/jobgate/api"
)

// Series are the objective's points each trial has reported, in order, by
// trial index: a trial's n-th point is its interval n.
type Series map[int][]float64

// Decision is what an early termination rule says of one trial.
type Decision struct {
	Stop bool
	// Detail says which rule fired and on which numbers, for the trial's
	// reason (api.ReasonEarlyTerminated).
	Detail string
}

// Decide applies p to trial at its latest interval, the moment its point
// arrives: whether to stop it, by the points of every trial of the sweep
// (running and ended) recorded so far. A trial is only ever compared with
// the others at the same interval, so a late starter is judged as the
// early ones were.
func Decide(p *api.EarlyTermination, goal api.Goal, trial int, series Series) Decision {
	own := series[trial]
	n := len(own)
	if p == nil || !p.Interval(n) {
		return Decision{}
	}
	switch p.Type {
	case api.PolicyMedianStopping:
		return medianStopping(goal, trial, n, series)
	case api.PolicyBandit:
		return bandit(p, goal, trial, n, series)
	case api.PolicyTruncation:
		return truncation(p, goal, trial, n, series)
	}
	return Decision{}
}

// others are the indexes of the trials but trial that reached interval n,
// ascending.
func others(trial, n int, series Series) []int {
	var out []int
	for i, s := range series {
		if i != trial && len(s) >= n {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// best is the best of the first n points of s.
func best(goal api.Goal, s []float64, n int) float64 {
	b := s[0]
	for _, v := range s[1:n] {
		if goal.Better(v, b) {
			b = v
		}
	}
	return b
}

// medianStopping is Azure ML's (after Google Vizier's): stop a trial whose
// best point up to interval n is worse than the median of the other
// trials' running averages over their intervals 1..n.
func medianStopping(goal api.Goal, trial, n int, series Series) Decision {
	peers := others(trial, n, series)
	if len(peers) == 0 {
		return Decision{}
	}
	avgs := make([]float64, len(peers))
	for k, i := range peers {
		var sum float64
		for _, v := range series[i][:n] {
			sum += v
		}
		avgs[k] = sum / float64(n)
	}
	med := median(avgs)
	own := best(goal, series[trial], n)
	if !goal.Better(med, own) {
		return Decision{}
	}
	return Decision{Stop: true, Detail: fmt.Sprintf(
		"median_stopping at interval %d: best so far %v is worse than %v, the median of %d other trials' running averages",
		n, own, med, len(peers))}
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bandit is Azure ML's: stop a trial whose point at interval n is not
// within the slack of the best point any other trial reported up to
// interval n. slack_factor is a ratio (for a goal of maximize the bound is
// best/(1+slack_factor), for minimize best*(1+slack_factor), taken on
// |best| so that a negative metric works the same way); slack_amount is a
// distance.
func bandit(p *api.EarlyTermination, goal api.Goal, trial, n int, series Series) Decision {
	peers := others(trial, n, series)
	if len(peers) == 0 {
		return Decision{}
	}
	top := best(goal, series[peers[0]], n)
	for _, i := range peers[1:] {
		if b := best(goal, series[i], n); goal.Better(b, top) {
			top = b
		}
	}
	var bound float64
	switch {
	case p.SlackAmount != nil && goal == api.GoalMaximize:
		bound = top - *p.SlackAmount
	case p.SlackAmount != nil:
		bound = top + *p.SlackAmount
	case goal == api.GoalMaximize:
		bound = top - math.Abs(top)*(*p.SlackFactor/(1+*p.SlackFactor))
	default:
		bound = top + math.Abs(top)**p.SlackFactor
	}
	v := series[trial][n-1]
	if !goal.Better(bound, v) {
		return Decision{}
	}
	return Decision{Stop: true, Detail: fmt.Sprintf(
		"%s at interval %d: %v is outside the slack of the best trial's %v (bound %v)", p, n, v, top, bound)}
}

// truncation is Azure ML's truncation selection: at interval n, rank every
// trial that reached it (this one included) by its point there, and stop
// this one if it is among the worst truncation_percentage percent (rounded
// down). A tie ranks the later trial worse.
func truncation(p *api.EarlyTermination, goal api.Goal, trial, n int, series Series) Decision {
	ranked := append(others(trial, n, series), trial)
	cut := len(ranked) * p.TruncationPercentage / 100
	if cut == 0 {
		return Decision{}
	}
	// Worst first.
	slices.SortFunc(ranked, func(a, b int) int {
		va, vb := series[a][n-1], series[b][n-1]
		switch {
		case goal.Better(vb, va):
			return -1
		case goal.Better(va, vb):
			return 1
		}
		return cmp.Compare(b, a)
	})
	rank := slices.Index(ranked, trial)
	if rank >= cut {
		return Decision{}
	}
	return Decision{Stop: true, Detail: fmt.Sprintf(
		"%s at interval %d: %v is among the worst %d of %d trials", p, n, series[trial][n-1], cut, len(ranked))}
}
