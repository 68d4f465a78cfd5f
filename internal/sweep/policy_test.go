package sweep_test

import (
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/sweep"
)

func f(v float64) *float64 { return &v }

// The tables' numbers are worked by hand in each case's comment.
func TestDecide(t *testing.T) {
	median := &api.EarlyTermination{Type: api.PolicyMedianStopping, EvaluationInterval: 1}
	minSeries := sweep.Series{
		0: {1.0, 0.8, 0.6}, // running averages 1.0, 0.9, 0.8
		1: {1.2, 1.0, 0.7}, // 1.2, 1.1, 0.9667
		2: {2.0, 1.5},      // 2.0, 1.75
	}
	banditSeries := sweep.Series{0: {1.0, 0.5}, 1: {0.9, 0.56}, 2: {0.8, 0.54}}
	trunc := func(pct int) *api.EarlyTermination {
		return &api.EarlyTermination{Type: api.PolicyTruncation, EvaluationInterval: 1, TruncationPercentage: pct}
	}
	five := sweep.Series{0: {0.5}, 1: {0.9}, 2: {0.7}, 3: {0.8}, 4: {0.6}}
	tests := []struct {
		name   string
		policy *api.EarlyTermination
		goal   api.Goal
		trial  int
		series sweep.Series
		stop   bool
		detail string
	}{
		// Interval 2: best 1.5; the others' averages 0.9 and 1.1, median 1.0.
		{"median stops the worse trial", median, api.GoalMinimize, 2, minSeries, true,
			"median_stopping at interval 2: best so far 1.5 is worse than 1, the median of 2 other trials' running averages"},
		// Interval 2 of trial 1 (trial 0 and 2's points up to 2 count): best
		// 1.0; averages 0.9 and 1.75, median 1.325.
		{"median spares a better one", median, api.GoalMinimize, 1, sweep.Series{0: minSeries[0], 1: minSeries[1][:2], 2: minSeries[2]}, false, ""},
		// Interval 3: best 0.7; only trial 0 reached 3, average 0.8.
		{"median among those that reached the interval", median, api.GoalMinimize, 1, minSeries, false, ""},
		{"median waits for delay_evaluation", &api.EarlyTermination{Type: api.PolicyMedianStopping, EvaluationInterval: 1, DelayEvaluation: 3},
			api.GoalMinimize, 2, minSeries, false, ""},
		// Interval 3 with trial 0 far better still is skipped: 3 is no
		// multiple of 2.
		{"median only at evaluation_interval", &api.EarlyTermination{Type: api.PolicyMedianStopping, EvaluationInterval: 2},
			api.GoalMinimize, 1, sweep.Series{0: {0.1, 0.1, 0.1}, 1: {5, 5, 5}}, false, ""},
		{"median at the next multiple", &api.EarlyTermination{Type: api.PolicyMedianStopping, EvaluationInterval: 2},
			api.GoalMinimize, 1, sweep.Series{0: {0.1, 0.1, 0.1, 0.1}, 1: {5, 5, 5, 5}}, true, "interval 4"},
		// Maximize: best 0.2; averages 0.55 and 0.45, median 0.5.
		{"median maximizing", median, api.GoalMaximize, 2, sweep.Series{0: {0.5, 0.6}, 1: {0.4, 0.5}, 2: {0.1, 0.2}}, true, "best so far 0.2"},
		{"median alone", median, api.GoalMinimize, 0, sweep.Series{0: {9}}, false, ""},

		// Best of the others up to 2 is 0.5; bound 0.5 * 1.1 = 0.55; 0.56 is out.
		{"bandit factor stops", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, SlackFactor: f(0.1)},
			api.GoalMinimize, 1, banditSeries, true, "bandit (slack_factor 0.1) at interval 2: 0.56 is outside the slack of the best trial's 0.5"},
		// Best of the others 0.5 (trial 0); 0.54 is within 0.55.
		{"bandit factor spares", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, SlackFactor: f(0.1)},
			api.GoalMinimize, 2, banditSeries, false, ""},
		// Bound 0.5 + 0.07 = 0.57.
		{"bandit amount spares", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, SlackAmount: f(0.07)},
			api.GoalMinimize, 1, banditSeries, false, ""},
		// Bound 0.5 + 0.05 = 0.55.
		{"bandit amount stops", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, SlackAmount: f(0.05)},
			api.GoalMinimize, 1, banditSeries, true, "slack_amount 0.05"},
		// Maximize: bound 0.8 / 1.25 = 0.64; 0.63 is out, 0.65 in.
		{"bandit maximizing stops", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, SlackFactor: f(0.25)},
			api.GoalMaximize, 2, sweep.Series{0: {0.8}, 1: {0.65}, 2: {0.63}}, true, "bound 0.64"},
		{"bandit maximizing spares", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, SlackFactor: f(0.25)},
			api.GoalMaximize, 1, sweep.Series{0: {0.8}, 1: {0.65}, 2: {0.63}}, false, ""},
		{"bandit waits for delay_evaluation", &api.EarlyTermination{Type: api.PolicyBandit, EvaluationInterval: 1, DelayEvaluation: 3, SlackFactor: f(0.1)},
			api.GoalMinimize, 1, banditSeries, false, ""},

		// 5 trials, 20%: 1 stopped, the worst (0.9, trial 1).
		{"truncation stops the worst", trunc(20), api.GoalMinimize, 1, five, true, "truncation (20%) at interval 1: 0.9 is among the worst 1 of 5 trials"},
		{"truncation spares the second worst at 20%", trunc(20), api.GoalMinimize, 3, five, false, ""},
		// 40%: 2 stopped, 0.9 and 0.8.
		{"truncation stops the second worst at 40%", trunc(40), api.GoalMinimize, 3, five, true, "worst 2 of 5"},
		// 4 trials at 20%: 0.8 rounds down to none.
		{"truncation rounds down", trunc(20), api.GoalMinimize, 1, sweep.Series{0: {0.5}, 1: {0.9}, 2: {0.7}, 3: {0.8}}, false, ""},
		// Maximize: the worst is the lowest, 0.5 (trial 0).
		{"truncation maximizing", trunc(20), api.GoalMaximize, 0, five, true, "0.5 is among the worst"},
		// A tie at the bottom ranks the later trial worse.
		{"truncation tie, later trial", trunc(20), api.GoalMinimize, 2, sweep.Series{0: {0.5}, 1: {0.9}, 2: {0.9}, 3: {0.1}, 4: {0.2}}, true, ""},
		{"truncation tie, earlier trial", trunc(20), api.GoalMinimize, 1, sweep.Series{0: {0.5}, 1: {0.9}, 2: {0.9}, 3: {0.1}, 4: {0.2}}, false, ""},
		{"no policy", nil, api.GoalMinimize, 1, five, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := sweep.Decide(tt.policy, tt.goal, tt.trial, tt.series)
			if d.Stop != tt.stop || !strings.Contains(d.Detail, tt.detail) {
				t.Errorf("got %+v, want stop %v with %q", d, tt.stop, tt.detail)
			}
		})
	}
}
