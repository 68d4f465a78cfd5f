package gateway

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/webhook"
)

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	envRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	userRE  = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})(:([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10}))?$`)
	imageRE = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:(?::[0-9]+)?/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$`)
)

// Limits on what a job hands the kernel when it starts a process (Linux
// takes up to 2 MiB of argv and environment together, and one argument up to
// 128 KiB; podman's runc stack wedges on an argument past 64 KiB, so the
// limits stay well below both).
const (
	maxCommandArgs = 4096
	// maxArgBytes bounds one argv element.
	maxArgBytes = 32 << 10
	// maxArgvBytes bounds one argv (a command, a preparation, an exec):
	// its elements' bytes, one more each for the NUL that ends it.
	maxArgvBytes = 256 << 10
	maxEnvVars   = 512
	maxEnvBytes  = 256 << 10
)

// decodeSpec reads a job spec with the API's one strict decoder
// (api.DecodeJobSpecJSON): a body that is not one JSON value is a 400;
// unknown fields, keys given twice and wrong types are a 422 naming the
// field, and so is an input's within, which only the gateway sets.
func decodeSpec(r io.Reader) (api.JobSpec, error) {
	body, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.JobSpec{}, errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return api.JobSpec{}, errorf(http.StatusBadRequest, CodeBadRequest, "read body: %v", err)
	}
	spec, err := api.DecodeJobSpecJSON(body)
	var se *api.SpecError
	switch {
	case err == nil:
		for _, name := range slices.Sorted(maps.Keys(spec.Inputs)) {
			if spec.Inputs[name].Within != nil {
				return spec, specErr("inputs.%s.within is the gateway's to set (on a child submitted with a job token); leave it out", name)
			}
		}
		return spec, nil
	case errors.As(err, &se) && se.Syntax:
		return spec, errorf(http.StatusBadRequest, CodeBadRequest, "request body: %s", se.Msg)
	}
	return spec, specErr("%v", err)
}

func cmpField(f string) string {
	if f == "" {
		return "the body"
	}
	return f
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return goKind
}

// checkArgv says what is wrong with a non-empty argv named field (a job's
// command, its preparation, an exec), or "".
func checkArgv(field string, argv []string) string {
	if len(argv) > maxCommandArgs {
		return fmt.Sprintf("%s has %d elements; at most %d", field, len(argv), maxCommandArgs)
	}
	if argv[0] == "" {
		return field + "[0] must name the program to run"
	}
	total := 0
	for i, a := range argv {
		if strings.IndexByte(a, 0) >= 0 || !utf8.ValidString(a) {
			return fmt.Sprintf("%s[%d] must be valid UTF-8 without NUL bytes", field, i)
		}
		if len(a) > maxArgBytes {
			return fmt.Sprintf("%s[%d] is %d bytes; an argument may have at most %d (pass big values in a file or an input instead)", field, i, len(a), maxArgBytes)
		}
		total += len(a) + 1
	}
	if total > maxArgvBytes {
		return fmt.Sprintf("%s totals %d bytes; at most %d", field, total, maxArgvBytes)
	}
	return ""
}

// maxSpecTags bounds the tags a spec carries; more may be set later.
const maxSpecTags = 100

func specErr(format string, args ...any) *Error {
	return errorf(http.StatusUnprocessableEntity, CodeInvalidSpec, format, args...)
}

// SpecLimits bounds what a spec may ask for.
type SpecLimits struct {
	DefaultTimeoutSeconds int
	MaxTimeoutSeconds     int
	MaxRetries            int
}

// normalize fills defaults and validates every field, naming the first one
// that is wrong.
func normalize(s *api.JobSpec, lim SpecLimits) error {
	if s.Mode == "" {
		s.Mode = api.ModeContainer
	}
	if len(s.Tags) > maxSpecTags {
		return specErr("tags: at most %d, not %d", maxSpecTags, len(s.Tags))
	}
	if err := store.CheckKV("tags", s.Tags, store.MaxTagValueLen); err != nil {
		return specErr("%v", err)
	}
	if s.Mode != api.ModeContainer && s.Mode != api.ModeProcess {
		return specErr("mode must be %q or %q, not %q", api.ModeContainer, api.ModeProcess, s.Mode)
	}
	if len(s.Command) == 0 {
		return specErr("command must be a non-empty array of strings (argv), e.g. [\"python\", \"train.py\"]")
	}
	if problem := checkArgv("command", s.Command); problem != "" {
		return specErr("%s", problem)
	}
	if err := checkPreparation(s); err != nil {
		return err
	}
	switch s.Mode {
	case api.ModeContainer:
		if s.Image == "" {
			return specErr("image is required in container mode")
		}
		if len(s.Image) > 512 || !imageRE.MatchString(s.Image) {
			return specErr("image %q is not a valid image reference (like localhost/name:tag or registry.example.com/team/name:tag)", s.Image)
		}
	case api.ModeProcess:
		if s.Image != "" && (len(s.Image) > 512 || !imageRE.MatchString(s.Image)) {
			return specErr("image %q is not a valid image reference", s.Image)
		}
	}
	if s.Name == "" {
		s.Name = defaultName(s)
	}
	if !nameRE.MatchString(s.Name) {
		return specErr("name %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	if s.Experiment == "" {
		s.Experiment = "default"
	}
	if !nameRE.MatchString(s.Experiment) {
		return specErr("experiment %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Experiment)
	}
	if len(s.Env) > maxEnvVars {
		return specErr("env has %d variables; at most %d", len(s.Env), maxEnvVars)
	}
	size := 0
	for k, v := range s.Env {
		if !envRE.MatchString(k) {
			return specErr("env key %q must match [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if strings.HasPrefix(k, "JOBGATE_") {
			return specErr("env key %q: the JOBGATE_ prefix is reserved for variables jobgate sets", k)
		}
		if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
			return specErr("env %s must be valid UTF-8 without NUL bytes", k)
		}
		size += len(k) + len(v)
	}
	if size > maxEnvBytes {
		return specErr("env totals %d bytes; at most %d", size, maxEnvBytes)
	}
	for k, name := range s.Secrets {
		if !envRE.MatchString(k) || strings.HasPrefix(k, "JOBGATE_") {
			return specErr("secrets key %q must be an environment variable name outside the JOBGATE_ prefix", k)
		}
		if _, dup := s.Env[k]; dup {
			return specErr("secrets.%s: %s is also set in env; set it in one place", k, k)
		}
		if !secretNameRE.MatchString(name) {
			return specErr("secrets.%s: %q is not a secret name", k, name)
		}
	}
	if err := normalizeInputs(s); err != nil {
		return err
	}
	if s.ParentID != "" && (len(s.ParentID) > 64 || strings.ContainsAny(s.ParentID, "/ \x00")) {
		return specErr("parent_id %q is not a job id", s.ParentID)
	}
	if s.User != "" && !userRE.MatchString(s.User) {
		return specErr("user %q must be a user name, a uid, or uid:gid", s.User)
	}
	if n := s.Notify; n != nil {
		if n.URL == "" {
			return specErr("notify.url is required")
		}
		key, err := webhook.ParseSecret(n.Secret)
		if err != nil {
			return specErr("notify.secret must be a Standard Webhooks secret (whsec_ and base64): %v", err)
		}
		if len(key) < 16 {
			return specErr("notify.secret is too short: at least 16 bytes of key (whsec_ plus 24 random bytes in base64 is usual)")
		}
		for i, e := range n.Events {
			if e != "job.succeeded" && e != "job.failed" && e != "job.canceled" {
				return specErr("notify.events[%d] must be job.succeeded, job.failed or job.canceled, not %q", i, e)
			}
		}
	}
	r := s.Resources
	if r.CPUs < 0 || r.CPUs > 1024 {
		return specErr("resources.cpus must be between 0 and 1024, not %g", r.CPUs)
	}
	if r.MemoryMB < 0 || (r.MemoryMB > 0 && r.MemoryMB < 6) || r.MemoryMB > 16<<20 {
		return specErr("resources.memory_mb must be 0 (worker default) or between 6 and %d, not %d", 16<<20, r.MemoryMB)
	}
	if r.GPUs < 0 || r.GPUs > 64 {
		return specErr("resources.gpus must be between 0 and 64, not %d", r.GPUs)
	}
	if r.GPUs == 0 && (r.GPUModel != "" || r.GPUMemoryMB != 0) {
		return specErr("resources.gpu_model and resources.gpu_memory_mb need resources.gpus >= 1")
	}
	if len(r.GPUModel) > 64 || strings.ContainsAny(r.GPUModel, "\x00\n") {
		return specErr("resources.gpu_model must be a short part of a GPU name, like \"H100\"")
	}
	if r.GPUMemoryMB < 0 {
		return specErr("resources.gpu_memory_mb must not be negative")
	}
	if s.TimeoutSeconds == 0 {
		s.TimeoutSeconds = lim.DefaultTimeoutSeconds
	}
	if s.TimeoutSeconds < 0 {
		return specErr("timeout_seconds must be > 0")
	}
	if s.TimeoutSeconds > lim.MaxTimeoutSeconds {
		return specErr("timeout_seconds must be at most %d (this gateway's limit), not %d", lim.MaxTimeoutSeconds, s.TimeoutSeconds)
	}
	if s.MaxRetries < 0 || s.MaxRetries > lim.MaxRetries {
		return specErr("max_retries must be between 0 and %d, not %d", lim.MaxRetries, s.MaxRetries)
	}
	switch s.Priority {
	case "":
		s.Priority = api.PriorityNormal
	case api.PriorityHigh, api.PriorityNormal, api.PriorityLow:
	default:
		return specErr("priority must be %q, %q or %q, not %q", api.PriorityHigh, api.PriorityNormal, api.PriorityLow, s.Priority)
	}
	return nil
}

// defaultName names a job after its image's repository, else its program.
func defaultName(s *api.JobSpec) string {
	base := s.Image
	if base == "" {
		base = s.Command[0]
	}
	if i := strings.LastIndexAny(base, "/"); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.IndexAny(base, ":@"); i >= 0 {
		base = base[:i]
	}
	if nameRE.MatchString(base) {
		return base
	}
	return "job"
}
