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

// modelTagRef names what an MLflow tag is on: model Name (Version 0) or
// one of its versions.
type modelTagRef = store.ModelTagRef

// modelTags is the MLflow tags of each of refs.
func (g *Gateway) modelTags(ctx context.Context, ws string, refs []modelTagRef) (map[modelTagRef]map[string]string, error) {
	return g.store.ModelTags(ctx, ws, refs)
}

// setModelTag sets an MLflow tag of ref; a bad key or value, or one tag
// too many, is a refusal, and ref deleted meanwhile a 404.
func (g *Gateway) setModelTag(ctx context.Context, ws string, ref modelTagRef, key, value string) error {
	err := g.store.SetModelTag(ctx, ws, ref, key, value)
	switch {
	case err != nil && (errors.Is(err, store.ErrTooMany) || isKVError(err)):
		return refuse(invalid("tags: %v", err), err.Error())
	case errors.Is(err, store.ErrNotFound):
		return api.Errorf(api.CodeNotFound, "model %s was deleted", ref.Name)
	}
	return err
}

// deleteModelTag removes an MLflow tag of ref; a 404 when it has none.
func (g *Gateway) deleteModelTag(ctx context.Context, ws string, ref modelTagRef, key string) error {
	err := g.store.DeleteModelTag(ctx, ws, ref, key)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no tag %q", key)
	}
	return err
}

// putOutput stores r as output file rel of job id, streamed (the request
// body's cap bounds it).
func (g *Gateway) putOutput(ctx context.Context, id, rel string, r io.Reader) error {
	return g.artifacts.Put(ctx, artifact.OutputPrefix(id)+rel, r)
}
