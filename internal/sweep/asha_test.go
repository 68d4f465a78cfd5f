package sweep

import (
	"fmt"
	"testing"

	"github.com/jobgate/jobgate/api"
)

func TestASHARungs(t *testing.T) {
	for _, tc := range []struct {
		delay, eta, max int
		want            string
	}{
		{0, 3, 9, "[1 3 9]"},
		{0, 3, 10, "[1 3 9 10]"},
		{2, 2, 16, "[2 4 8 16]"},
		{4, 3, 5, "[4 5]"},
	} {
		p := &api.EarlyTermination{Type: api.PolicyASHA, DelayEvaluation: tc.delay, ReductionFactor: tc.eta, MaxResource: tc.max}
		if got := fmt.Sprint(p.Rungs()); got != tc.want {
			t.Errorf("delay %d, eta %d, max %d: rungs %s, want %s", tc.delay, tc.eta, tc.max, got, tc.want)
		}
	}
}

// TestASHAPromotion: rungs 1, 3, 9 with eta 3, losses (minimize) at
// interval 1 and 3 worked out by hand.
func TestASHAPromotion(t *testing.T) {
	p := &api.EarlyTermination{Type: api.PolicyASHA, ReductionFactor: 3, MaxResource: 9}
	goal := api.GoalMinimize
	at1 := func(i int, v float64, paused bool) ASHATrial {
		return ASHATrial{Index: i, Rung: 0, Paused: paused, Points: []float64{v}}
	}
	// Two trials at rung 0: floor(2/3) = 0 go on, so nobody is promoted.
	trials := []ASHATrial{at1(0, 0.5, true), at1(1, 0.4, true)}
	if got := Promotion(p, goal, trials); got != -1 {
		t.Errorf("two at rung 0: promoted position %d, want none", got)
	}
	// A third: floor(3/3) = 1 goes on, the best (trial 1, 0.4).
	trials = append(trials, at1(2, 0.6, true))
	if got := Promotion(p, goal, trials); got != 1 {
		t.Errorf("three at rung 0: promoted position %d, want 1 (loss 0.4)", got)
	}
	// Trial 1 runs rung 1 now (not paused): nobody else is in the top 1.
	trials[1] = ASHATrial{Index: 1, Rung: 1, Points: []float64{0.4, 0.3}}
	if got := Promotion(p, goal, trials); got != -1 {
		t.Errorf("while the promoted one runs: position %d, want none", got)
	}
	// Six at rung 0: the top 2 are trial 1 (0.4, gone on) and trial 4
	// (0.45), which is promoted.
	trials = append(trials, at1(3, 0.7, true), at1(4, 0.45, true), at1(5, 0.9, true))
	if got := Promotion(p, goal, trials); got != 4 {
		t.Errorf("six at rung 0: promoted position %d, want 4 (loss 0.45)", got)
	}
	// A higher rung goes first: three trials reached rung 1 (interval 3);
	// the best of them, paused there, goes on to rung 2 before any rung 0
	// promotion.
	trials = []ASHATrial{
		{Index: 0, Rung: 1, Paused: true, Points: []float64{0.4, 0.3, 0.2}},
		{Index: 1, Rung: 1, Paused: true, Points: []float64{0.45, 0.3, 0.25}},
		{Index: 2, Rung: 1, Paused: true, Points: []float64{0.5, 0.4, 0.3}},
		at1(3, 0.1, true), at1(4, 0.9, true), at1(5, 0.9, true),
	}
	if got := Promotion(p, goal, trials); got != 0 {
		t.Errorf("rung 1 full: promoted position %d, want 0 (0.2 at interval 3)", got)
	}
	why := NotPromoted(p, goal, trials, 2)
	if why.Code != api.ReasonEarlyTerminated || why.Detail != "asha: not promoted past rung 1 (interval 3): 0.3 ranked 3 of 3 there; the best 1 go on" {
		t.Errorf("not promoted: %+v", why)
	}
	// Maximize ranks the other way.
	if got := Promotion(p, api.GoalMaximize, []ASHATrial{at1(0, 0.5, true), at1(1, 0.4, true), at1(2, 0.6, true)}); got != 2 {
		t.Errorf("maximize: promoted position %d, want 2 (0.6)", got)
	}
}
