package scoring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// depKey names a deployment: its workspace and name.
type depKey struct{ ws, name string }

// table is one load of the routing table. It is never changed once
// published; the next load replaces it and closes changed.
type table struct {
	deps map[depKey]*deployment
	// changed is closed when a newer table replaces this one: held
	// requests wait on it.
	changed chan struct{}
}

// deployment is one deployment as the router routes it.
type deployment struct {
	key depKey
	// targets are the traffic targets, each with its ready replicas.
	targets []target
	// others are ready replicas of versions that are no longer targets (a
	// rolling update away from them): used only while no target has one.
	others []*replica
	// holds: it autoscales from zero, so a request without a ready replica
	// is held while one starts instead of answered 503.
	holds bool
	stats *depStats
}

type target struct {
	model    string
	version  int
	weight   int
	replicas []*replica
}

// replica is one ready replica. It outlives table loads (the router keeps
// it by job, attempt and address) so its count of outstanding requests
// does.
type replica struct {
	key     string
	jobID   string
	addr    string
	model   string
	version int
	// served is the Jobgate-Model-Version header's value: "iris:2".
	served      string
	url         *url.URL
	outstanding atomic.Int64
}

// depStats is what the router saw of one deployment, for its load reports.
type depStats struct {
	inFlight atomic.Int64 // requests in flight now, held ones included
	waiting  atomic.Int64 // held for lack of a replica now
	// sum and samples average inFlight over a report interval (the
	// reporter samples it).
	sum, samples atomic.Int64
}

// reload reads every deployment, its replica slots and their endpoints,
// and publishes a new table.
func (r *Router) reload(ctx context.Context) error {
	names, err := r.store.DeploymentNames(ctx, "")
	if err != nil {
		return fmt.Errorf("deployment names: %w", err)
	}
	deps := make(map[depKey]*deployment, len(names))
	live := map[string]bool{}
	for _, n := range names {
		d, err := r.loadDeployment(ctx, depKey{ws: n[0], name: n[1]}, live)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		deps[d.key] = d
	}
	r.mu.Lock()
	for k := range r.replicas {
		if !live[k] {
			delete(r.replicas, k)
		}
	}
	for k := range r.stats {
		if deps[k] == nil {
			delete(r.stats, k)
		}
	}
	r.mu.Unlock()
	old := r.table.Swap(&table{deps: deps, changed: make(chan struct{})})
	if old != nil {
		close(old.changed)
	}
	return nil
}

func (r *Router) loadDeployment(ctx context.Context, key depKey, live map[string]bool) (*deployment, error) {
	rec, _, err := r.store.Deployment(ctx, key.ws, key.name)
	if err != nil {
		return nil, err
	}
	slots, err := r.store.ReplicaSlots(ctx, key.ws, key.name)
	if err != nil {
		return nil, fmt.Errorf("replicas of %s/%s: %w", key.ws, key.name, err)
	}
	draining := map[string]bool{}
	var jobs []string
	for _, s := range slots {
		if s.JobID == "" {
			continue
		}
		jobs = append(jobs, s.JobID)
		draining[s.JobID] = s.Draining
	}
	eps, err := r.store.Endpoints(ctx, jobs...)
	if err != nil {
		return nil, fmt.Errorf("endpoints of %s/%s: %w", key.ws, key.name, err)
	}
	d := &deployment{key: key, holds: rec.Spec.Autoscale != nil && rec.Spec.Autoscale.Min == 0 && !rec.Deleting}
	for _, t := range rec.Targets {
		d.targets = append(d.targets, target{model: t.Model, version: t.Version, weight: max(t.Weight, 0)})
	}
	if len(d.targets) == 1 && d.targets[0].weight == 0 {
		d.targets[0].weight = 100
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range eps {
		if e.State != store.EndpointReady || draining[e.JobID] || e.Workspace != key.ws || e.Deployment != key.name || e.Address == "" {
			continue
		}
		rk := e.JobID + "/" + strconv.Itoa(e.Attempt) + "/" + e.Address
		rep := r.replicas[rk]
		if rep == nil {
			rep = &replica{key: rk, jobID: e.JobID, addr: e.Address, model: e.Model, version: e.Version,
				served: e.Model + ":" + strconv.Itoa(e.Version), url: &url.URL{Scheme: "http", Host: e.Address}}
			r.replicas[rk] = rep
		}
		live[rk] = true
		placed := false
		for i := range d.targets {
			if t := &d.targets[i]; t.model == e.Model && t.version == e.Version {
				t.replicas = append(t.replicas, rep)
				placed = true
				break
			}
		}
		if !placed {
			d.others = append(d.others, rep)
		}
	}
	d.stats = r.stats[key]
	if d.stats == nil {
		d.stats = &depStats{}
		r.stats[key] = d.stats
	}
	return d, nil
}

// pick chooses a ready replica of d for version ("" any), leaving out
// skip: weighted random over the targets with one, then the one with the
// fewest outstanding requests (ties at random). nil when there is none.
func (d *deployment) pick(version string, skip *replica) *replica {
	total := 0
	for i := range d.targets {
		t := &d.targets[i]
		if t.weight > 0 && t.matches(version) && t.hasReady(skip) {
			total += t.weight
		}
	}
	if total > 0 {
		n := rand.IntN(total)
		for i := range d.targets {
			t := &d.targets[i]
			if t.weight <= 0 || !t.matches(version) || !t.hasReady(skip) {
				continue
			}
			if n < t.weight {
				return leastOutstanding(t.replicas, version, skip)
			}
			n -= t.weight
		}
	}
	// No weighted target has one: a target of weight 0, or a version
	// being rolled away from.
	for i := range d.targets {
		if rep := leastOutstanding(d.targets[i].replicas, version, skip); rep != nil {
			return rep
		}
	}
	return leastOutstanding(d.others, version, skip)
}

func (t *target) matches(version string) bool {
	return version == "" || strconv.Itoa(t.version) == version
}

func (t *target) hasReady(skip *replica) bool {
	return len(t.replicas) > 1 || (len(t.replicas) == 1 && t.replicas[0] != skip)
}

func leastOutstanding(reps []*replica, version string, skip *replica) *replica {
	var best *replica
	var bestN int64
	ties := 0
	for _, rep := range reps {
		if rep == skip || (version != "" && strconv.Itoa(rep.version) != version) {
			continue
		}
		n := rep.outstanding.Load()
		switch {
		case best == nil || n < bestN:
			best, bestN, ties = rep, n, 1
		case n == bestN:
			ties++
			if rand.IntN(ties) == 0 {
				best = rep
			}
		}
	}
	return best
}

// knows reports whether version ("" any) is one d serves or has replicas of.
func (d *deployment) knows(version string) bool {
	if version == "" {
		return true
	}
	for i := range d.targets {
		if d.targets[i].matches(version) {
			return true
		}
	}
	for _, rep := range d.others {
		if strconv.Itoa(rep.version) == version {
			return true
		}
	}
	return false
}

// versions lists the versions d serves, for metadata answered from the
// table.
func (d *deployment) versions() []string {
	var out []string
	for _, t := range d.targets {
		out = append(out, strconv.Itoa(t.version))
	}
	return out
}

// reportLoop writes each deployment's load every ReportInterval, and at
// once when a request found no ready replica (then it also wakes the
// controller). It samples the in-flight counts ten times per interval for
// their average.
func (r *Router) reportLoop(ctx context.Context) {
	sample := time.NewTicker(max(r.cfg.ReportInterval/10, time.Millisecond))
	defer sample.Stop()
	report := time.NewTicker(r.cfg.ReportInterval)
	defer report.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sample.C:
			r.mu.Lock()
			for _, s := range r.stats {
				s.sum.Add(s.inFlight.Load())
				s.samples.Add(1)
			}
			r.mu.Unlock()
		case <-report.C:
			r.report(ctx)
		case <-r.reportNow:
			r.report(ctx)
		}
	}
}

// report writes every deployment's load; when any request is held, it
// wakes the controller too.
func (r *Router) report(ctx context.Context) {
	now := time.Now()
	type load struct {
		key depKey
		l   store.RouterLoad
	}
	var loads []load
	waiting := false
	r.mu.Lock()
	for k, s := range r.stats {
		sum, n := s.sum.Swap(0), s.samples.Swap(0)
		avg := float64(s.inFlight.Load())
		if n > 0 {
			avg = float64(sum) / float64(n) // the interval's average
		}
		w := int(s.waiting.Load())
		if w > 0 {
			waiting = true
			avg = max(avg, float64(s.inFlight.Load()))
		}
		loads = append(loads, load{k, store.RouterLoad{InFlight: avg, Waiting: w, At: now}})
	}
	r.mu.Unlock()
	for _, l := range loads {
		if err := r.store.ReportLoad(ctx, l.key.ws, l.key.name, r.cfg.ID, l.l); err != nil && ctx.Err() == nil {
			r.logger.WarnContext(ctx, "scoring: report load", slog.String("deployment", l.key.name), slog.Any("error", err))
			return
		}
	}
	if waiting {
		_ = queue.Notify(ctx, r.rdb, queue.ChannelDeploy)
	}
}
