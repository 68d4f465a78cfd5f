package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/leader"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/tmpl"
	"github.com/jobgate/jobgate/queue"
)

// Controller runs sweeps: it makes their trials (child jobs of the sweep's
// tracked parent job) up to the limits, applies the early termination rule
// to each new metric point, and ends a sweep when its last trial ends. It
// keeps nothing in memory: each step reads the sweep's record in Redis, so
// any gateway may take one (the API's, as a request or a metric point
// arrives) and the leader's loop (Run) takes them all, which catches the
// trials that end, and the points that workers record from a job's log,
// without a request.
type Controller struct {
	leader *leader.Elector
	st     *store.Store
	jobs   *job.Service
	now    func() time.Time
	logger *slog.Logger
	// Tick is how often the leader passes over the running sweeps;
	// MinGap is the least time between two passes (metric wake-ups).
	Tick, MinGap time.Duration
}

// NewController makes the sweep controller; l nil makes Run pass as if it
// led.
func NewController(l *leader.Elector, st *store.Store, jobs *job.Service, now func() time.Time, logger *slog.Logger) *Controller {
	if now == nil {
		now = time.Now
	}
	return &Controller{leader: l, st: st, jobs: jobs, now: now, logger: logger, Tick: 2 * time.Second, MinGap: 200 * time.Millisecond}
}

// Run passes over every running sweep while this process leads: when a
// worker says a child job recorded metric points from its log
// (queue.ChannelSweeps), so that a rule judges them as they arrive, and
// each Tick, which catches trials that ended.
func (c *Controller) Run(ctx context.Context) error {
	waker, err := queue.NewWaker(ctx, c.st.Redis(), queue.ChannelSweeps)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("sweeps: subscribe: %w", err)
	}
	defer waker.Close()
	leading := c.leader == nil
	var sub *leader.Subscription
	if c.leader != nil {
		sub = c.leader.Listen()
		defer sub.Unlisten()
	}
	for ctx.Err() == nil {
		gen := waker.Gen()
		if sub != nil {
			select {
			case leading = <-sub.C():
			default:
			}
		}
		if leading {
			if err := c.Pass(ctx); err != nil && ctx.Err() == nil {
				c.logger.WarnContext(ctx, "sweeps pass", slog.Any("error", err))
			}
		}
		// At most one pass per MinGap however often child jobs print
		// metrics: a chatty job must not turn the leader into a busy loop
		// over every sweep's trials.
		gap := time.NewTimer(c.MinGap)
		select {
		case <-ctx.Done():
			gap.Stop()
			return nil
		case <-gap.C:
		}
		waker.Wait(ctx, gen, c.Tick)
	}
	return nil
}

// Pass judges and reconciles every running sweep once.
func (c *Controller) Pass(ctx context.Context) error {
	running, err := c.st.RunningSweeps(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range running {
		if err := c.Judge(ctx, r[0], r[1]); err != nil && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, fmt.Errorf("sweep %s/%s: %w", r[0], r[1], err))
		}
	}
	return errors.Join(errs...)
}

// Judge applies sweep id's early termination rule to each of its running
// trials that reported a point of the objective since it was last judged
// (at that point's interval), cancels those the rule stops, and reconciles
// the sweep.
func (c *Controller) Judge(ctx context.Context, ws, id string) error {
	var stop []store.SweepTrialState
	_, err := c.st.UpdateSweep(ctx, ws, id, func(rec *store.SweepRecord) (bool, error) {
		stop = stop[:0]
		if rec.Status != api.SweepRunning || rec.Spec.EarlyTermination == nil || isASHA(rec.Spec) {
			return false, nil // asha acts as a segment ends (decide)
		}
		series, err := c.Series(ctx, rec)
		if err != nil {
			return false, err
		}
		changed := false
		for i := range rec.Trials {
			t := &rec.Trials[i]
			n := len(series[t.Index])
			if t.JobID == "" || t.Stop != nil || n <= t.Judged {
				continue
			}
			j, err := c.st.GetJob(ctx, ws, t.JobID)
			if err != nil {
				return false, err
			}
			from := t.Judged
			t.Judged, changed = n, true
			if j.Status.Terminal() {
				continue
			}
			// Each interval since the last judged, in order, as if its
			// point had just arrived: several may come between two
			// passes.
			own := series[t.Index]
			for k := from + 1; k <= n; k++ {
				series[t.Index] = own[:k]
				if d := Decide(rec.Spec.EarlyTermination, rec.Spec.Objective.Goal, t.Index, series); d.Stop {
					t.Stop = &api.Reason{Code: api.ReasonEarlyTerminated, Detail: d.Detail}
					stop = append(stop, *t)
					break
				}
			}
			series[t.Index] = own
		}
		return changed, nil
	})
	if err != nil {
		return err
	}
	for _, t := range stop {
		if err := c.jobs.CancelFor(ctx, ws, "sweep:"+id, t.JobID, *t.Stop); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	_, err = c.Reconcile(ctx, ws, id)
	return err
}

// TrialOf is the sweep j is a trial of; "" when it is none.
func (c *Controller) TrialOf(ctx context.Context, j *api.Job) (string, error) {
	if j.Spec.ParentID == "" {
		return "", nil
	}
	if _, err := c.st.GetSweep(ctx, j.Workspace, j.Spec.ParentID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return "", err
	}
	return j.Spec.ParentID, nil
}

// Series are the objective's points of every trial of rec, by index.
func (c *Controller) Series(ctx context.Context, rec *store.SweepRecord) (Series, error) {
	series := Series{}
	for _, t := range rec.Trials {
		var vals []float64
		// An asha trial's points are its segments', in order: each went on
		// from the one before's checkpoint.
		for _, id := range append(slices.Clone(t.Segments), t.JobID) {
			if id == "" {
				continue
			}
			m, err := c.st.Metrics(ctx, id, rec.Spec.Objective.Metric)
			if err != nil {
				return nil, err
			}
			for _, p := range m[rec.Spec.Objective.Metric] {
				vals = append(vals, p.Value)
			}
		}
		if len(vals) > 0 {
			series[t.Index] = vals
		}
	}
	return series, nil
}

// RenderTrial is trial index's job: the template with its parameters in
// {{ .params.NAME }} of the command and env, a child of the sweep. With
// asha it is the trial's first segment (RenderSegment). A refusal is a
// *job.Error naming the trial's field.
func RenderTrial(spec api.SweepSpec, sweepID string, index int, params map[string]string) (api.JobSpec, error) {
	return RenderSegment(spec, sweepID, index, 0, params, "")
}

// RenderSegment is the job of rung rung of trial index under asha: told
// its budget as {{ .budget }} (in its command or env), and started from
// the trial's checkpoint (its first segment's, checkpointFrom) past rung 0.
func RenderSegment(spec api.SweepSpec, sweepID string, index, rung int, params map[string]string, checkpointFrom string) (api.JobSpec, error) {
	js := spec.Trial
	data := map[string]any{"params": toAny(params)}
	asha := isASHA(spec)
	if asha {
		data["budget"] = strconv.Itoa(spec.EarlyTermination.Rungs()[rung])
		js.CheckpointFrom = checkpointFrom
	}
	var err error
	if js.Command, err = tmpl.RenderArgs(js.Command, data); err != nil {
		return js, job.Errorf(api.CodeInvalidSpec, "trial.command", "trial.command: %v", err)
	}
	if js.Env != nil {
		if js.Env, err = tmpl.RenderMap(js.Env, data); err != nil {
			return js, job.Errorf(api.CodeInvalidSpec, "trial.env", "trial.env: %v", err)
		}
	}
	js.ParentID = sweepID
	js.Experiment = cmpOr(js.Experiment, spec.Experiment)
	js.Name = fmt.Sprintf("%s-trial-%d", cmpOr(js.Name, spec.Name, "sweep"), index)
	if asha && rung > 0 {
		js.Name += fmt.Sprintf("-rung-%d", rung)
	}
	return js, nil
}

func isASHA(spec api.SweepSpec) bool {
	return spec.EarlyTermination != nil && spec.EarlyTermination.Type == api.PolicyASHA
}

func cmpOr(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func toAny(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// InTrial says that a refused job spec is the sweep's trial template.
func InTrial(err error) error {
	var je *job.Error
	if errors.As(err, &je) {
		if strings.HasPrefix(je.Field, "trial.") {
			return err
		}
		return &job.Error{Code: je.Code, Field: strings.TrimSuffix("trial."+je.Field, "."), Message: "trial: " + je.Message}
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return api.Errorf(ae.Code, "trial: %s", ae.Message)
	}
	return err
}

// trialKey is the Idempotency-Key trial index of a sweep is made under: a
// gateway that goes on with a sweep another one left finds its trials
// rather than making them twice.
func trialKey(sweepID string, index, rung int) string {
	key := "sweep-" + sweepID + "-trial-" + strconv.Itoa(index)
	if rung > 0 {
		key += "-rung-" + strconv.Itoa(rung) // asha's later segments
	}
	return key
}

// Reconcile brings sweep id to where it should be: trials made up to
// max_concurrent_trials running and max_total_trials in all, the running
// ones canceled once timeout_seconds passed, and the sweep (and its parent
// job) ended when no trial runs and none is left to make.
func (c *Controller) Reconcile(ctx context.Context, ws, id string) (*store.SweepRecord, error) {
	if err := c.decide(ctx, ws, id); err != nil {
		return nil, err
	}
	return c.st.UpdateSweep(ctx, ws, id, func(rec *store.SweepRecord) (bool, error) {
		if rec.Status != api.SweepRunning {
			return false, nil
		}
		smp, err := NewSampler(rec.Spec, rec.Seed)
		if err != nil {
			return false, err
		}
		actor := "sweep:" + rec.ID
		now := c.now().UTC()
		timedOut := c.timedOut(rec)
		changed := false
		active, won := 0, false
		for i := range rec.Trials {
			t := &rec.Trials[i]
			if t.JobID == "" {
				continue
			}
			j, err := c.st.GetJob(ctx, ws, t.JobID)
			if err != nil {
				return false, err
			}
			switch {
			case !j.Status.Terminal() && timedOut:
				if t.Stop == nil {
					t.Stop = &api.Reason{Code: api.ReasonTimeout, Detail: fmt.Sprintf("the sweep's timeout_seconds %d passed", rec.Spec.Limits.TimeoutSeconds)}
					changed = true
				}
				if err := c.jobs.CancelFor(ctx, ws, actor, t.JobID, *t.Stop); err != nil && !errors.Is(err, store.ErrNotFound) {
					return false, err
				}
				active++
			case !j.Status.Terminal():
				active++
			case j.Status == api.StatusSucceeded || t.Stop != nil && t.Stop.Code == api.ReasonEarlyTerminated:
				won = true
			}
		}
		// Trials decided before their job was made (bayesian sampling's,
		// see decide): made now with the parameters the record keeps, so
		// that a retry or another gateway makes the same job.
		for i := range rec.Trials {
			t := &rec.Trials[i]
			if t.JobID != "" || t.Stop != nil {
				continue
			}
			if timedOut {
				t.Stop = &api.Reason{Code: api.ReasonTimeout, Detail: fmt.Sprintf("the sweep's timeout_seconds %d passed before the trial was made", rec.Spec.Limits.TimeoutSeconds)}
			} else if made, err := c.makeTrial(ctx, rec, t); err != nil {
				return false, err
			} else if made {
				active++
			}
			changed = true
		}
		for !smp.Learns() && !isASHA(rec.Spec) && !timedOut && active < rec.Spec.Limits.MaxConcurrentTrials && rec.Next < smp.Size() {
			params, err := smp.Trial(rec.Next)
			if err != nil {
				return false, err
			}
			t := store.SweepTrialState{Index: rec.Next, Params: params}
			made, err := c.makeTrial(ctx, rec, &t)
			if err != nil {
				return false, err
			}
			if made {
				active++
			}
			rec.Trials = append(rec.Trials, t)
			rec.Next++
			changed = true
		}
		if active == 0 && (timedOut || rec.Next >= smp.Size()) {
			if isASHA(rec.Spec) {
				if err := c.endPaused(ctx, rec); err != nil {
					return false, err
				}
			}
			rec.Status = api.SweepFailed
			status := api.StatusFailed
			if won {
				rec.Status, status = api.SweepSucceeded, api.StatusSucceeded
			}
			rec.EndedAt = &now
			if err := c.endParent(ctx, ws, rec.ID, status); err != nil {
				return false, err
			}
			changed = true
		}
		return changed, nil
	})
}

func (c *Controller) timedOut(rec *store.SweepRecord) bool {
	return rec.Spec.Limits.TimeoutSeconds > 0 &&
		c.now().UTC().Sub(rec.CreatedAt).Seconds() >= float64(rec.Spec.Limits.TimeoutSeconds)
}

// makeTrial makes trial t's job with its parameters; false, with t.Stop
// set, when the job service refused it (the trial counts as failed and the
// sweep goes on).
func (c *Controller) makeTrial(ctx context.Context, rec *store.SweepRecord, t *store.SweepTrialState) (bool, error) {
	from := ""
	if len(t.Segments) > 0 {
		from = t.Segments[0]
	}
	js, err := RenderSegment(rec.Spec, rec.ID, t.Index, t.Rung, t.Params, from)
	if err == nil {
		var res job.Result
		res, err = c.jobs.Submit(ctx, job.Request{Workspace: rec.Workspace, Actor: "sweep:" + rec.ID, Spec: js, IdempotencyKey: trialKey(rec.ID, t.Index, t.Rung)})
		if err == nil {
			t.JobID = res.Job.ID
			return true, c.st.SetParams(ctx, t.JobID, t.Params)
		}
	}
	var je *job.Error
	var ae *api.Error
	if errors.As(err, &je) || errors.As(err, &ae) {
		t.Stop = &api.Reason{Code: api.ReasonStartFailed, Detail: InTrial(err).Error()}
		return false, nil
	}
	return false, err
}

// decide picks the parameters of the trials a sampler that learns
// (bayesian) may start now, from the trials ended so far, and keeps them
// in the record before any job is made: deciding touches nothing outside
// Redis, so an update that runs twice decides twice harmlessly, and the
// job made after (Reconcile) is the one the record names.
func (c *Controller) decide(ctx context.Context, ws, id string) error {
	_, err := c.st.UpdateSweep(ctx, ws, id, func(rec *store.SweepRecord) (bool, error) {
		if rec.Status != api.SweepRunning || c.timedOut(rec) {
			return false, nil
		}
		smp, err := NewSampler(rec.Spec, rec.Seed)
		asha := isASHA(rec.Spec)
		if err != nil || !smp.Learns() && !asha {
			return false, err
		}
		active := 0
		var ended []*store.SweepTrialState
		paused := map[int]bool{} // asha: trials whose segment ran to its rung
		for i := range rec.Trials {
			t := &rec.Trials[i]
			switch {
			case t.JobID == "" && t.Stop == nil:
				active++ // decided, its job not made yet
			case t.JobID != "":
				j, err := c.st.GetJob(ctx, ws, t.JobID)
				if err != nil {
					return false, err
				}
				if !j.Status.Terminal() {
					active++
				} else if j.Status == api.StatusSucceeded || t.Stop != nil && t.Stop.Code == api.ReasonEarlyTerminated {
					ended = append(ended, t)
					paused[t.Index] = asha && j.Status == api.StatusSucceeded && t.Stop == nil &&
						t.Rung < len(rec.Spec.EarlyTermination.Rungs())-1
				}
			}
		}
		if active >= rec.Spec.Limits.MaxConcurrentTrials {
			return false, nil
		}
		series, err := c.Series(ctx, rec)
		if err != nil {
			return false, err
		}
		changed := false
		for active < rec.Spec.Limits.MaxConcurrentTrials {
			if asha {
				// A free slot goes to a promotion first (ASHA): the trial
				// goes on from its checkpoint with the next rung's budget.
				if i := Promotion(rec.Spec.EarlyTermination, rec.Spec.Objective.Goal, ashaTrials(rec, series, paused)); i >= 0 {
					t := &rec.Trials[i]
					t.Segments, t.JobID = append(t.Segments, t.JobID), ""
					t.Rung++
					paused[t.Index] = false
					active, changed = active+1, true
					continue
				}
			}
			if rec.Next >= smp.Size() {
				break
			}
			params, err := smp.TrialAfter(rec.Next, c.history(rec, series, ended))
			if err != nil {
				return false, err
			}
			rec.Trials = append(rec.Trials, store.SweepTrialState{Index: rec.Next, Params: params})
			rec.Next++
			active, changed = active+1, true
		}
		return changed, nil
	})
	return err
}

// history is what bayesian sampling learns from the ended trials: the best
// objective of each that ran to its end, the points of each the sweep
// stopped early; a trial that reported no objective teaches nothing.
func (c *Controller) history(rec *store.SweepRecord, series Series, ended []*store.SweepTrialState) []Observation {
	var out []Observation
	for _, t := range ended {
		pts := series[t.Index]
		if len(pts) == 0 {
			continue
		}
		o := Observation{Params: t.Params, Value: best(rec.Spec.Objective.Goal, pts, len(pts))}
		if t.Stop != nil {
			o.Stopped, o.Points = true, pts
		}
		out = append(out, o)
	}
	return out
}

// endPaused gives each trial asha left paused at a rung below the last
// its reason, once the sweep ends: it was stopped early, at that rung.
func (c *Controller) endPaused(ctx context.Context, rec *store.SweepRecord) error {
	series, err := c.Series(ctx, rec)
	if err != nil {
		return err
	}
	last := len(rec.Spec.EarlyTermination.Rungs()) - 1
	paused := map[int]bool{}
	for _, t := range rec.Trials {
		if t.JobID == "" || t.Stop != nil || t.Rung >= last {
			continue
		}
		j, err := c.st.GetJob(ctx, rec.Workspace, t.JobID)
		if err != nil {
			return err
		}
		paused[t.Index] = j.Status == api.StatusSucceeded
	}
	view := ashaTrials(rec, series, paused)
	for i := range rec.Trials {
		if paused[rec.Trials[i].Index] {
			why := NotPromoted(rec.Spec.EarlyTermination, rec.Spec.Objective.Goal, view, i)
			rec.Trials[i].Stop = &why
		}
	}
	return nil
}

// endParent ends the sweep's tracked parent job with status.
func (c *Controller) endParent(ctx context.Context, ws, id string, status api.Status) error {
	parent, err := c.st.GetJob(ctx, ws, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || parent.Status.Terminal() {
		return err
	}
	o := store.NewOutcome(status, api.Reason{})
	o.StartedAt = parent.StartedAt
	if err := c.st.Finish(ctx, ws, id, 1, o, c.now()); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}

// SortTrials orders trials by their best objective, best first; those that
// reported none go last, in index order.
func SortTrials(trials []api.SweepTrial, goal api.Goal) {
	slices.SortStableFunc(trials, func(a, b api.SweepTrial) int {
		switch {
		case a.BestMetric == nil && b.BestMetric != nil:
			return 1
		case a.BestMetric != nil && b.BestMetric == nil:
			return -1
		case a.BestMetric != nil && goal.Better(*a.BestMetric, *b.BestMetric):
			return -1
		case a.BestMetric != nil && goal.Better(*b.BestMetric, *a.BestMetric):
			return 1
		}
		return a.Index - b.Index
	})
}
