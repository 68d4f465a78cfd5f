package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// The tracking code of MLflow's lifecycle and search calls (mlflow_*.go
// translate onto it): soft deletion of experiments and runs, experiment
// tags, renaming a run, and reading runs, series and outputs in bulk.

// workspaceExperiments lists ws's experiments with their latest activity.
func (g *Gateway) workspaceExperiments(ctx context.Context, ws string) (map[string]string, error) {
	return g.store.Experiments(ctx, ws)
}

// deletedExperiments is the set of ws's deleted experiments.
func (g *Gateway) deletedExperiments(ctx context.Context, ws string) (map[string]bool, error) {
	return g.store.DeletedExperiments(ctx, ws)
}

// setExperimentDeleted deletes experiment name of ws softly, or restores it.
func (g *Gateway) setExperimentDeleted(ctx context.Context, ws, name string, deleted bool) error {
	return g.store.SetExperimentDeleted(ctx, ws, name, deleted)
}

// experimentTags is experiment name of ws's tags.
func (g *Gateway) experimentTags(ctx context.Context, ws, name string) (map[string]string, error) {
	return g.store.ExperimentTags(ctx, ws, name)
}

// setExperimentTag sets one tag of experiment name of ws; a bad key or
// value and too many tags are the caller's fault.
func (g *Gateway) setExperimentTag(ctx context.Context, ws, name, key, value string) error {
	err := g.store.SetExperimentTag(ctx, ws, name, key, value)
	if err != nil && (errors.Is(err, store.ErrTooMany) || isKVError(err)) {
		return refuse(invalid("tags: %v", err), err.Error())
	}
	return err
}

// setRunDeleted deletes run id softly, or restores it.
func (g *Gateway) setRunDeleted(ctx context.Context, id string, deleted bool) error {
	return g.store.SetRunDeleted(ctx, id, deleted)
}

// deletedRuns says which of ids are deleted runs.
func (g *Gateway) deletedRuns(ctx context.Context, ids []string) (map[string]bool, error) {
	return g.store.DeletedRuns(ctx, ids)
}

// renameRun gives job j a new name.
func (g *Gateway) renameRun(ctx context.Context, j *api.Job, name string) error {
	return g.store.SetJobName(ctx, j.ID, j.Experiment, name)
}

// deleteTag removes tag key of job id.
func (g *Gateway) deleteTag(ctx context.Context, id, key string) error {
	return g.store.DeleteTag(ctx, id, key)
}

// paramsAndTags is job id's params and tags.
func (g *Gateway) paramsAndTags(ctx context.Context, id string) (params, tags map[string]string, err error) {
	return g.store.ParamsAndTags(ctx, id)
}

// paramsAndTagsOf is the params and tags of each of ids.
func (g *Gateway) paramsAndTagsOf(ctx context.Context, ids []string) (params, tags map[string]map[string]string, err error) {
	if params, err = g.store.ParamsOf(ctx, ids); err != nil {
		return nil, nil, err
	}
	tags, err = g.store.TagsOf(ctx, ids)
	return params, tags, err
}

// experimentJobsUpTo appends experiment name of ws's jobs, newest first, to
// jobs until it holds max.
func (g *Gateway) experimentJobsUpTo(ctx context.Context, ws, name string, jobs []api.Job, max int) ([]api.Job, error) {
	for cursor := ""; len(jobs) < max; {
		page, next, err := g.store.ListJobs(ctx, ws, store.ListFilter{Experiment: name, Limit: min(500, max-len(jobs)), Cursor: cursor})
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, page...)
		if next == "" {
			break
		}
		cursor = next
	}
	return jobs, nil
}

// metricSeries is every point of metric name of job id, in step order.
func (g *Gateway) metricSeries(ctx context.Context, id, name string) ([]store.MetricPoint, error) {
	series, err := g.store.Metrics(ctx, id, name)
	return series[name], err
}

// outputFile is one file of a job's outputs.
type outputFile struct {
	Path string // below the outputs folder
	Size int64
}

// outputFiles is job id's output files below folder dir ("" for all).
func (g *Gateway) outputFiles(ctx context.Context, id, dir string) ([]outputFile, error) {
	root := artifact.OutputPrefix(id)
	prefix := root
	if dir != "" {
		prefix += dir + "/"
	}
	keys, err := g.artifacts.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	out := make([]outputFile, 0, len(keys))
	for _, k := range keys {
		info, err := g.artifacts.Stat(ctx, k)
		if errors.Is(err, artifact.ErrNotFound) {
			continue // replaced or removed since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, outputFile{Path: strings.TrimPrefix(k, root), Size: info.Size})
	}
	return out, nil
}
