package job

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
)

var (
	// NameRE is what names a job, an experiment, a datastore and the
	// gateway's other named things may be.
	NameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	// SecretNameRE is what names a workspace secret.
	SecretNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)
	envRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE       = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})(:([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10}))?$`)
	imageRE      = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:(?::[0-9]+)?/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`)
	inputNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// Limits on what a job hands the kernel when it starts a process (Linux
// takes up to 2 MiB of argv and environment together, and one argument up to
// 128 KiB; podman's runc stack wedges on an argument past 64 KiB, so the
// limits stay well below both).
const (
	MaxCommandArgs = 4096
	// MaxArgBytes bounds one argv element.
	MaxArgBytes = 32 << 10
	// MaxArgvBytes bounds one argv (a command, a preparation, an exec):
	// its elements' bytes, one more each for the NUL that ends it.
	MaxArgvBytes = 256 << 10
	maxEnvVars   = 512
	maxEnvBytes  = 256 << 10
)

const (
	// maxSpecTags bounds the tags a spec carries; more may be set later.
	maxSpecTags   = 100
	maxInputs     = 64
	maxPathLength = 4096
)

// CheckArgv says what is wrong with a non-empty argv named field (a job's
// command, its preparation, an exec), or "".
func CheckArgv(field string, argv []string) string {
	if len(argv) > MaxCommandArgs {
		return fmt.Sprintf("%s has %d elements; at most %d", field, len(argv), MaxCommandArgs)
	}
	if argv[0] == "" {
		return field + "[0] must name the program to run"
	}
	total := 0
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
			return fmt.Sprintf("%s[%d] must be valid UTF-8 without NUL bytes", field, i)
		}
		if len(a) > MaxArgBytes {
			return fmt.Sprintf("%s[%d] is %d bytes; an argument may have at most %d (pass big values in a file or an input instead)", field, i, len(a), MaxArgBytes)
		}
		total += len(a) + 1
	}
	if total > MaxArgvBytes {
		return fmt.Sprintf("%s totals %d bytes; at most %d", field, total, MaxArgvBytes)
	}
	return ""
}

// Limits bounds what a spec may ask for. Zero values get the defaults on
// each field.
type Limits struct {
	// DefaultTimeoutSeconds for jobs that set none; default 3600.
	DefaultTimeoutSeconds int
	// MaxTimeoutSeconds a job may ask for; default 7 days.
	MaxTimeoutSeconds int
	// MaxRetries a job may ask for; default 10.
	MaxRetries int
}

// normalize fills defaults and validates every field, naming the first one
// that is wrong. service says that the spec is a deployment replica's
// (Service set, from the controller): it has no timeout and no retries.
func normalize(s *api.JobSpec, lim Limits, service bool) error {
	if s.Mode == "" {
		s.Mode = api.ModeContainer
	}
	if len(s.Tags) > maxSpecTags {
		return specErr("tags", "tags: at most %d, not %d", maxSpecTags, len(s.Tags))
	}
	if err := store.CheckKV("tags", s.Tags, store.MaxTagValueLen); err != nil {
		return specErr("tags", "%v", err)
	}
	if s.Mode != api.ModeContainer && s.Mode != api.ModeProcess {
		return specErr("mode", "mode must be %q or %q, not %q", api.ModeContainer, api.ModeProcess, s.Mode)
	}
	if err := checkBatchScore(s); err != nil {
		return err
	}
	// A batch-score job through a deployment runs no program of its own.
	throughDeployment := s.BatchScore != nil && s.BatchScore.Deployment != ""
	if s.Batch != nil {
		if err := checkBatch(s); err != nil {
			return err
		}
	} else if throughDeployment {
	} else if len(s.Command) == 0 {
		return specErr("command", "command must be a non-empty array of strings (argv), e.g. [\"python\", \"train.py\"]")
	} else if problem := CheckArgv("command", s.Command); problem != "" {
		return specErr("command", "%s", problem)
	}
	if err := checkPreparation(s); err != nil {
		return err
	}
	switch s.Mode {
	case api.ModeContainer:
		if s.Image == "" && (s.Batch != nil || throughDeployment) {
			break // the worker scores a batch itself
		}
		if s.Image == "" {
			return specErr("image", "image is required in container mode")
		}
		if len(s.Image) > 512 || !imageRE.MatchString(s.Image) {
			return specErr("image", "image %q is not a valid image reference (like localhost/name:tag or registry.example.com/team/name:tag)", s.Image)
		}
	case api.ModeProcess:
		if s.Image != "" && (len(s.Image) > 512 || !imageRE.MatchString(s.Image)) {
			return specErr("image", "image %q is not a valid image reference", s.Image)
		}
	}
	if s.Name == "" {
		s.Name = defaultName(s)
	}
	if !NameRE.MatchString(s.Name) {
		return specErr("name", "name %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	if s.Experiment == "" {
		s.Experiment = "default"
	}
	if !NameRE.MatchString(s.Experiment) {
		return specErr("experiment", "experiment %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Experiment)
	}
	if err := checkEnv(s); err != nil {
		return err
	}
	if err := normalizeInputs(s); err != nil {
		return err
	}
	if s.ParentID != "" && (len(s.ParentID) > 64 || strings.ContainsAny(s.ParentID, "/ \x00")) {
		return specErr("parent_id", "parent_id %q is not a job id", s.ParentID)
	}
	if s.User != "" && !userRE.MatchString(s.User) {
		return specErr("user", "user %q must be a user name, a uid, or uid:gid", s.User)
	}
	if err := checkNotify(s.Notify); err != nil {
		return err
	}
	if err := checkResources(s.Resources); err != nil {
		return err
	}
	if service {
		if err := checkService(s); err != nil {
			return err
		}
	} else if s.TimeoutSeconds == 0 {
		s.TimeoutSeconds = lim.DefaultTimeoutSeconds
	}
	if s.TimeoutSeconds < 0 {
		return specErr("timeout_seconds", "timeout_seconds must be > 0")
	}
	if s.TimeoutSeconds > lim.MaxTimeoutSeconds {
		return specErr("timeout_seconds", "timeout_seconds must be at most %d (this gateway's limit), not %d", lim.MaxTimeoutSeconds, s.TimeoutSeconds)
	}
	if s.MaxRetries < 0 || s.MaxRetries > lim.MaxRetries {
		return specErr("max_retries", "max_retries must be between 0 and %d, not %d", lim.MaxRetries, s.MaxRetries)
	}
	switch s.Priority {
	case "":
		s.Priority = api.PriorityNormal
	case api.PriorityHigh, api.PriorityNormal, api.PriorityLow:
	default:
		return specErr("priority", "priority must be %q, %q or %q, not %q", api.PriorityHigh, api.PriorityNormal, api.PriorityLow, s.Priority)
	}
	return nil
}

// checkBatch checks a batch's spec (from the batch API): the worker runs
// it in-process, so it has no command, image or preparation.
func checkBatch(s *api.JobSpec) error {
	b := s.Batch
	switch {
	case len(s.Command) != 0 || s.Image != "" || len(s.Preparation) != 0 || s.Mode != api.ModeContainer:
		return specErr("batch", "batch: a batch job runs no command of its own")
	case !NameRE.MatchString(b.Deployment):
		return specErr("batch.deployment", "batch.deployment %q is not a deployment name", b.Deployment)
	case b.Input == "" || b.Total < 0:
		return specErr("batch.input", "batch.input names the rows to score")
	case b.ErrorThreshold < 0:
		return specErr("error_threshold", "error_threshold must be >= 0, not %d", b.ErrorThreshold)
	case b.MaxConcurrency < 1 || b.MaxConcurrency > 256:
		return specErr("max_concurrency", "max_concurrency must be between 1 and 256, not %d", b.MaxConcurrency)
	}
	return nil
}

// checkService checks a replica's spec: a service runs until its
// deployment stops it, so it has no timeout (0) and no retries (the
// controller restarts a crashed replica itself).
func checkService(s *api.JobSpec) error {
	sv := s.Service
	switch {
	case s.TimeoutSeconds != 0:
		return specErr("timeout_seconds", "timeout_seconds: a service job has no timeout (0), not %d", s.TimeoutSeconds)
	case s.MaxRetries != 0:
		return specErr("max_retries", "max_retries: a service job is restarted by its deployment, not retried (0), not %d", s.MaxRetries)
	case !NameRE.MatchString(sv.Deployment):
		return specErr("service.deployment", "service.deployment %q is not a deployment name", sv.Deployment)
	case !NameRE.MatchString(sv.Replica):
		return specErr("service.replica", "service.replica %q is not a replica id", sv.Replica)
	case sv.Model == "" || sv.Version < 1:
		return specErr("service.model", "service.model and service.version name the model version it serves")
	case sv.ReadinessPath != "" && (!strings.HasPrefix(sv.ReadinessPath, "/") || len(sv.ReadinessPath) > 1024 || strings.ContainsAny(sv.ReadinessPath, " \x00\r\n#")):
		return specErr("service.readiness_path", "service.readiness_path %q must be a URL path starting with /", sv.ReadinessPath)
	}
	return nil
}

// checkEnv checks a spec's env and secrets: names, the reserved prefix, the
// values and their sizes.
func checkEnv(s *api.JobSpec) error {
	if len(s.Env) > maxEnvVars {
		return specErr("env", "env has %d variables; at most %d", len(s.Env), maxEnvVars)
	}
	size := 0
	for k, v := range s.Env {
		if !envRE.MatchString(k) {
			return specErr("env", "env key %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if strings.HasPrefix(k, "JOBGATE_") {
			return specErr("env", "env key %q: the JOBGATE_ prefix is reserved for variables jobgate sets", k)
		}
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return specErr("env."+k, "env %s must be valid UTF-8 without NUL bytes", k)
		}
		size += len(k) + len(v)
	}
	if size > maxEnvBytes {
		return specErr("env", "env totals %d bytes; at most %d", size, maxEnvBytes)
	}
	for k, name := range s.Secrets {
		if !envRE.MatchString(k) || strings.HasPrefix(k, "JOBGATE_") {
			return specErr("secrets", "secrets key %q must be an environment variable name outside the JOBGATE_ prefix", k)
		}
		if _, dup := s.Env[k]; dup {
			return specErr("secrets."+k, "secrets.%s: %s is also set in env; set it in one place", k, k)
		}
		if !SecretNameRE.MatchString(name) {
			return specErr("secrets."+k, "secrets.%s: %q is not a secret name", k, name)
		}
	}
	return nil
}

// checkNotify checks a completion callback's fields; where it may go is
// Validate's to check, against the callback policy.
func checkNotify(n *api.Notify) error {
	if n == nil {
		return nil
	}
	if n.URL == "" {
		return specErr("notify.url", "notify.url is required")
	}
	key, err := webhook.ParseSecret(n.Secret)
	if err != nil {
		return specErr("notify.secret", "notify.secret must be a Standard Webhooks secret (whsec_ and base64): %v", err)
	}
	if len(key) < 16 {
		return specErr("notify.secret", "notify.secret is too short: at least 16 bytes of key (whsec_ plus 24 random bytes in base64 is usual)")
	}
	for i, e := range n.Events {
		if e != "job.succeeded" && e != "job.failed" && e != "job.canceled" {
			return specErr(fmt.Sprintf("notify.events[%d]", i), "notify.events[%d] must be job.succeeded, job.failed or job.canceled, not %q", i, e)
		}
	}
	return nil
}

// checkResources checks what a spec asks of a worker.
func checkResources(r api.Resources) error {
	if r.CPUs < 0 || r.CPUs > 1024 {
		return specErr("resources.cpus", "resources.cpus must be between 0 and 1024, not %g", r.CPUs)
	}
	if r.MemoryMB < 0 || (r.MemoryMB > 0 && r.MemoryMB < 6) || r.MemoryMB > 16<<20 {
		return specErr("resources.memory_mb", "resources.memory_mb must be 0 (worker default) or between 6 and %d, not %d", 16<<20, r.MemoryMB)
	}
	if r.GPUs < 0 || r.GPUs > 64 {
		return specErr("resources.gpus", "resources.gpus must be between 0 and 64, not %d", r.GPUs)
	}
	if r.GPUs == 0 && (r.GPUModel != "" || r.GPUMemoryMB != 0) {
		return specErr("resources.gpus", "resources.gpu_model and resources.gpu_memory_mb need resources.gpus >= 1")
	}
	if len(r.GPUModel) > 64 || strings.ContainsAny(r.GPUModel, "\x00\n") {
		return specErr("resources.gpu_model", "resources.gpu_model must be a short part of a GPU name, like \"H100\"")
	}
	if r.GPUMemoryMB < 0 {
		return specErr("resources.gpu_memory_mb", "resources.gpu_memory_mb must not be negative")
	}
	return nil
}

// defaultName names a job after its image's repository, else its program.
func defaultName(s *api.JobSpec) string {
	base := s.Image
	if s.Kind == api.KindBatchScore {
		base = "batch-score"
	}
	if base == "" && len(s.Command) == 0 {
		return "job"
	}
	if base == "" {
		base = s.Command[0]
	}
	if i := strings.LastIndexAny(base, "/"); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.IndexAny(base, ":@"); i >= 0 {
		base = base[:i]
	}
	if NameRE.MatchString(base) {
		return base
	}
	return "job"
}

// checkPreparation validates a spec's preparation argv as command is
// validated; an empty list means none.
func checkPreparation(s *api.JobSpec) error {
	if len(s.Preparation) == 0 {
		s.Preparation = nil
		return nil
	}
	if problem := CheckArgv("preparation", s.Preparation); problem != "" {
		return specErr("preparation", "%s", problem)
	}
	return nil
}

// normalizeInputs fills each input's default mode and checks the spec's
// inputs field by field; that each datastore exists is checkInputs' part.
func normalizeInputs(s *api.JobSpec) error {
	if len(s.Inputs) > maxInputs {
		return specErr("inputs", "inputs has %d entries; at most %d", len(s.Inputs), maxInputs)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Inputs)) {
		in := s.Inputs[name]
		if !inputNameRE.MatchString(name) {
			return specErr("inputs", "inputs: name %q must be 1-63 lower-case letters, digits or '_', starting with a letter (it names /inputs/NAME and JOBGATE_INPUT_NAME)", name)
		}
		if in.Datastore == "" {
			return specErr("inputs."+name+".datastore", "inputs.%s.datastore is required: the name of a datastore of this workspace (GET /v1/datastores)", name)
		}
		if !NameRE.MatchString(in.Datastore) {
			return specErr("inputs."+name+".datastore", "inputs.%s.datastore %q is not a datastore name", name, in.Datastore)
		}
		if err := checkInputPath(in.Path); err != nil {
			return specErr("inputs."+name+".path", "inputs.%s.path: %v", name, err)
		}
		switch in.Mode {
		case "":
			in.Mode = api.InputReadOnlyMount
		case api.InputReadOnlyMount, api.InputDownload:
		default:
			return specErr("inputs."+name+".mode", "inputs.%s.mode must be %q or %q, not %q", name, api.InputReadOnlyMount, api.InputDownload, in.Mode)
		}
		s.Inputs[name] = in
	}
	return nil
}

// checkInputPath checks an input's path below its datastore: relative and
// clean, so that joined to the datastore's folder it stays inside (links
// are the worker's to check).
func checkInputPath(p string) error {
	switch {
	case p == "":
		return nil
	case len(p) > maxPathLength || strings.IndexByte(p, 0) >= 0 || !utf8.ValidString(p):
		return fmt.Errorf("must be valid UTF-8 of at most %d bytes without NUL", maxPathLength)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("%q must be relative to the datastore's folder, not absolute", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%q must be a clean relative path without \"..\", \".\" or empty segments, e.g. \"sets/v1\" (empty for the whole datastore)", p)
		}
	}
	return nil
}

// Redact hides what a spec holds that the API never shows again: a
// callback's secret.
func Redact(s *api.JobSpec) {
	if s.Notify != nil && s.Notify.Secret != "" {
		n := *s.Notify
		n.Secret = "***"
		s.Notify = &n
	}
}
