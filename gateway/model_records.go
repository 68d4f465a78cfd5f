package gateway

import (
	"context"
	"errors"
	"io"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// The store reads and writes that the MLflow dialect makes beside those of
// the REST handlers: MLflow creates a model before its first version and
// keeps a description of it (mlflow_models.go), and its artifact proxy
// writes a tracked run's outputs (mlflow_artifacts.go).

// createModel records model name of ws without versions; false if it
// exists.
func (g *Gateway) createModel(ctx context.Context, ws, name string) (bool, error) {
	return g.store.CreateModel(ctx, ws, name, g.now().UTC())
}

func (g *Gateway) setModelDescription(ctx context.Context, ws, name, desc string) error {
	return g.store.SetModelDescription(ctx, ws, name, desc)
}

func (g *Gateway) modelDescriptions(ctx context.Context, ws string) (map[string]string, error) {
	return g.store.ModelDescriptions(ctx, ws)
}

// models is ws's models, sorted by name.
func (g *Gateway) models(ctx context.Context, ws string) ([]api.Model, error) {
	return g.store.Models(ctx, ws)
}

// versionByRef is the version that ref ("iris:2", "iris@prod") names, or
// nil when there is none.
func (g *Gateway) versionByRef(ctx context.Context, ws, ref string) (*api.ModelVersion, error) {
	mv, err := g.store.ResolveModel(ctx, ws, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return mv, err
}

// setAlias points alias of model name at version v; store.ErrNotFound
// for no such version.
func (g *Gateway) setAlias(ctx context.Context, ws, name, alias string, v int) error {
	return g.store.SetModelAlias(ctx, ws, name, alias, v)
}

// deleteAlias removes alias of model name; store.ErrNotFound for none.
func (g *Gateway) deleteAlias(ctx context.Context, ws, name, alias string) error {
	return g.store.DeleteModelAlias(ctx, ws, name, alias)
}

// putOutput stores r as output file rel of job id, streamed (the request
// body's cap bounds it).
func (g *Gateway) putOutput(ctx context.Context, id, rel string, r io.Reader) error {
	return g.artifacts.Put(ctx, artifact.OutputPrefix(id)+rel, r)
}
