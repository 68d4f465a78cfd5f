package sweep

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
)

// ASHATrial is one trial as asha's promotion rule sees it.
type ASHATrial struct {
	Index int
	// Rung is the rung its latest segment ran (or runs) to.
	Rung int
	// Paused says its latest segment ran to its rung's budget and ended,
	// and nothing has decided its fate yet.
	Paused bool
	// Points are the objective's points of all its segments, in order.
	Points []float64
}

// rungRanking is the trials that reached rung k (reported its budget's
// point), best first by their point there; a tie ranks the lower index
// first. It returns their positions in trials.
func rungRanking(p *api.EarlyTermination, goal api.Goal, trials []ASHATrial, k int) []int {
	at := p.Rungs()[k]
	var out []int
	for i, t := range trials {
		if len(t.Points) >= at {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b int) int {
		va, vb := trials[a].Points[at-1], trials[b].Points[at-1]
		switch {
		case goal.Better(va, vb):
			return -1
		case goal.Better(vb, va):
			return 1
		}
		return cmp.Compare(trials[a].Index, trials[b].Index)
	})
	return out
}

// Promotion is the position in trials of the trial asha promotes into a
// free slot, or -1: from the highest rung down, the best paused trial at
// rung k that is in the top floor(n/reduction_factor) of the n trials that
// reached rung k (Li et al., "A System for Massively Parallel
// Hyperparameter Tuning", 2020).
func Promotion(p *api.EarlyTermination, goal api.Goal, trials []ASHATrial) int {
	rungs := p.Rungs()
	for k := len(rungs) - 2; k >= 0; k-- {
		ranked := rungRanking(p, goal, trials, k)
		top := len(ranked) / p.ReductionFactor
		for _, i := range ranked[:top] {
			if t := trials[i]; t.Paused && t.Rung == k {
				return i
			}
		}
	}
	return -1
}

// NotPromoted is the reason of a trial asha left at its rung once the
// sweep has nothing left to run.
func NotPromoted(p *api.EarlyTermination, goal api.Goal, trials []ASHATrial, i int) api.Reason {
	t := trials[i]
	ranked := rungRanking(p, goal, trials, t.Rung)
	at := p.Rungs()[t.Rung]
	detail := fmt.Sprintf("asha: not promoted past rung %d (interval %d)", t.Rung, at)
	if rank := slices.Index(ranked, i); rank >= 0 {
		detail += fmt.Sprintf(": %v ranked %d of %d there; the best %d go on", t.Points[at-1], rank+1, len(ranked), len(ranked)/p.ReductionFactor)
	}
	return api.Reason{Code: api.ReasonEarlyTerminated, Detail: detail}
}

// ashaTrials is rec's trials as asha sees them, in rec's order.
func ashaTrials(rec *store.SweepRecord, series Series, paused map[int]bool) []ASHATrial {
	out := make([]ASHATrial, len(rec.Trials))
	for i, t := range rec.Trials {
		out[i] = ASHATrial{Index: t.Index, Rung: t.Rung, Paused: paused[t.Index], Points: series[t.Index]}
	}
	return out
}
