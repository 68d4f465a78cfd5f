package job

import (
	"context"
	"errors"
	"log/slog"
	"path"
	"strconv"
	"strings"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"go.opentelemetry.io/otel/propagation"
)

// Limits and defaults of a batch-score job (api.BatchScore).
const (
	defaultMiniBatchSize  = 10
	maxMiniBatchSize      = 10_000
	maxInstanceCount      = 64
	defaultBatchScoreConc = 2
	maxBatchScoreConc     = 64
	defaultPredictions    = "predictions.jsonl"
)

// checkBatchScore fills the defaults of a batch-score job's spec and
// checks it. The fields the gateway sets (the resolved model, the
// partition) are checked by the caller, which knows who sent the spec.
func checkBatchScore(s *api.JobSpec) error {
	switch s.Kind {
	case "", api.KindCommand:
		if s.BatchScore != nil {
			return specErr("kind", "kind: a spec with batch_score is of kind %q, not %q", api.KindBatchScore, s.Kind)
		}
		return nil
	case api.KindBatchScore:
	default:
		return specErr("kind", "kind must be %q (the default) or %q, not %q", api.KindCommand, api.KindBatchScore, s.Kind)
	}
	b := s.BatchScore
	if b == nil {
		return specErr("batch_score", "batch_score is required for a job of kind batch-score: {\"model\": \"NAME:VERSION or NAME@ALIAS\", ...}")
	}
	if s.Service != nil || s.Batch != nil {
		return specErr("kind", "kind: a batch-score job is neither a service nor an HTTP batch")
	}
	if _, err := api.ParseModelRef(b.Model); err != nil {
		return specErr("batch_score.model", "batch_score.model: %v", err)
	}
	if b.Deployment != "" {
		if !NameRE.MatchString(b.Deployment) {
			return specErr("batch_score.deployment", "batch_score.deployment %q is not a deployment name", b.Deployment)
		}
		if len(s.Command) != 0 || s.Image != "" || len(s.Preparation) != 0 {
			return specErr("batch_score.deployment", "batch_score.deployment: a job that sends through a deployment runs no model server of its own (no image, command or preparation)")
		}
		if s.Mode == api.ModeProcess {
			return specErr("mode", "mode: a batch-score job through a deployment has no process of its own")
		}
	}
	if len(s.Inputs) == 0 {
		return specErr("inputs", "inputs: a batch-score job needs the datastore folder to score as an input")
	}
	if b.Input == "" {
		if len(s.Inputs) != 1 {
			return specErr("batch_score.input", "batch_score.input names which of the job's %d inputs holds the files", len(s.Inputs))
		}
		for name := range s.Inputs {
			b.Input = name
		}
	}
	if _, ok := s.Inputs[b.Input]; !ok {
		return specErr("batch_score.input", "batch_score.input %q is not one of the job's inputs", b.Input)
	}
	switch {
	case b.MiniBatchSize == 0:
		b.MiniBatchSize = defaultMiniBatchSize
	case b.MiniBatchSize < 1 || b.MiniBatchSize > maxMiniBatchSize:
		return specErr("batch_score.mini_batch_size", "batch_score.mini_batch_size must be between 1 and %d, not %d", maxMiniBatchSize, b.MiniBatchSize)
	}
	switch {
	case b.InstanceCount == 0:
		b.InstanceCount = 1
	case b.InstanceCount < 1 || b.InstanceCount > maxInstanceCount:
		return specErr("batch_score.instance_count", "batch_score.instance_count must be between 1 and %d, not %d", maxInstanceCount, b.InstanceCount)
	}
	if b.ErrorThreshold < -1 {
		return specErr("batch_score.error_threshold", "batch_score.error_threshold must be -1 (any) or >= 0, not %d", b.ErrorThreshold)
	}
	switch {
	case b.MaxConcurrency == 0:
		b.MaxConcurrency = defaultBatchScoreConc
	case b.MaxConcurrency < 1 || b.MaxConcurrency > maxBatchScoreConc:
		return specErr("batch_score.max_concurrency", "batch_score.max_concurrency must be between 1 and %d, not %d", maxBatchScoreConc, b.MaxConcurrency)
	}
	if b.Output == "" {
		b.Output = defaultPredictions
	}
	if clean := path.Clean(b.Output); clean != b.Output || strings.HasPrefix(b.Output, "/") || strings.HasPrefix(b.Output, "../") ||
		b.Output == ".." || b.Output == "." || len(b.Output) > 255 || strings.ContainsAny(b.Output, "\x00\\") {
		return specErr("batch_score.output", "batch_score.output %q must be a clean relative path in the job's outputs, like predictions.jsonl", b.Output)
	}
	if b.InputName == "" {
		b.InputName = "input"
	}
	if len(b.InputName) > 128 || !NameRE.MatchString(b.InputName) {
		return specErr("batch_score.input_name", "batch_score.input_name %q must be 1-128 letters, digits, '.', '_' or '-'", b.InputName)
	}
	if b.Partition < 0 || b.Partition >= b.InstanceCount {
		return specErr("batch_score.partition", "batch_score.partition %d is not below instance_count %d", b.Partition, b.InstanceCount)
	}
	return nil
}

// refuseResolved refuses a client's batch_score that sets what only the
// gateway sets: the resolved model and the partition.
func refuseResolved(b *api.BatchScore) error {
	switch {
	case b == nil:
		return nil
	case b.ModelName != "" || b.Version != 0 || b.SHA256 != "":
		return specErr("batch_score.model_name", "batch_score.model_name, batch_score.version and batch_score.sha256 are set by the gateway from batch_score.model; leave them out")
	case b.TraceParent != "":
		return specErr("batch_score.traceparent", "batch_score.traceparent is set by the gateway from the request's trace; leave it out")
	case b.Partition != 0:
		return specErr("batch_score.partition", "batch_score.partition is set by the gateway for the children it makes; leave it out")
	}
	return nil
}

// resolveBatchScore pins a client's batch-score spec to the model version
// its model names now: the job and every retry of it score with that
// version, wherever the alias moves meanwhile.
func (s *Service) resolveBatchScore(ctx context.Context, ws string, spec *api.JobSpec) error {
	if spec.Kind != api.KindBatchScore || spec.BatchScore == nil {
		return nil
	}
	b := *spec.BatchScore
	if err := refuseResolved(&b); err != nil {
		return err
	}
	if _, err := api.ParseModelRef(b.Model); err != nil {
		return specErr("batch_score.model", "batch_score.model: %v", err)
	}
	mv, err := s.store.ResolveModel(ctx, ws, b.Model)
	if errors.Is(err, store.ErrNotFound) {
		return Errorf(api.CodeInvalid, "batch_score.model", "batch_score.model: %v", err)
	}
	if err != nil {
		return err
	}
	b.ModelName, b.Version, b.SHA256 = mv.Name, mv.Version, mv.SHA256
	// The job's trace is the submitting request's (a schedule's or
	// trigger's run has none: the job then starts its own).
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	b.TraceParent = carrier["traceparent"]
	spec.BatchScore = &b
	return nil
}

// submitPartitions makes the children of a new batch-score job, one per
// partition past the first. A child that cannot be made is logged, not
// fatal: the job itself scores every file no child took.
func (s *Service) submitPartitions(ctx context.Context, parent *api.Job, actor string) {
	b := parent.Spec.BatchScore
	for p := 1; p < b.InstanceCount; p++ {
		spec := parent.Spec
		spec.Name = truncateName(parent.Spec.Name, "-p"+strconv.Itoa(p))
		spec.ParentID = parent.ID
		spec.Notify = nil // the user is called back once, for the job
		bs := *b
		bs.Partition = p
		spec.BatchScore = &bs
		spec.Inputs = cloneInputs(parent.Spec.Inputs)
		spec.Tags = cloneTags(parent.Spec.Tags)
		if spec.Tags == nil {
			spec.Tags = map[string]string{}
		}
		spec.Tags["jobgate.batch_score.parent"] = parent.ID
		spec.Tags["jobgate.batch_score.partition"] = strconv.Itoa(p)
		_, _, err := s.create(ctx, parent.Workspace, actor, spec, nil, trustBatchScore)
		if err != nil {
			s.logger.WarnContext(ctx, "make a batch-score partition: the job scores its files itself", slog.String("job_id", parent.ID),
				slog.Int("partition", p), slog.Any("error", err))
		}
	}
}

func truncateName(name, suffix string) string {
	if max := 128 - len(suffix); len(name) > max {
		name = name[:max]
	}
	return name + suffix
}

func cloneInputs(in map[string]api.Input) map[string]api.Input {
	if in == nil {
		return nil
	}
	out := make(map[string]api.Input, len(in))
	for k, v := range in {
		v.Within = append([]string(nil), v.Within...)
		out[k] = v
	}
	return out
}

func cloneTags(in map[string]string) map[string]string {
	if in == nil {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
