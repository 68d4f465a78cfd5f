package api

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The model registry (/v1/models): versions of a model are files or folders
// copied out of a succeeded job's outputs, checksummed and immutable; an
// alias names one version.

// ModelRegister is the body of POST /v1/models: the file or folder at Path
// in job JobID's outputs becomes the next version of model Name.
type ModelRegister struct {
	Name  string `json:"name"`
	JobID string `json:"job_id"`
	// Path is relative to the job's outputs folder (JOBGATE_OUTPUTS): a
	// file ("model.json") or a folder ("model").
	Path string `json:"path"`
}

// ModelKind is what a version holds.
type ModelKind string

const (
	ModelFileKind   ModelKind = "file"
	ModelFolderKind ModelKind = "folder"
)

// ModelVersion is one immutable version of a model.
type ModelVersion struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
	// SHA256 (hex) is, for a file, the SHA-256 of its bytes; for a folder,
	// the SHA-256 of the lines "<sha256 of the file>  <relative path>\n",
	// one per file, sorted by relative path in byte order: what
	// `find . -type f -print0 | sed -z 's|^\./||' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`
	// prints (for names without a backslash or a newline, which sha256sum escapes).
	SHA256 string    `json:"sha256"`
	Size   int64     `json:"size"`
	Kind   ModelKind `json:"kind"`
	// Files of a folder version, sorted by path; empty for a file.
	Files []ModelFile `json:"files,omitempty"`
	// Lineage: the job the version was registered from, the path in its
	// outputs, its experiment, params and final metrics (each metric's
	// value at its highest step) when it was registered.
	SourceJob  string             `json:"source_job"`
	SourcePath string             `json:"source_path"`
	Experiment string             `json:"experiment,omitempty"`
	Params     map[string]string  `json:"params,omitempty"`
	Metrics    map[string]float64 `json:"metrics,omitempty"`
	// Aliases naming this version, sorted.
	Aliases   []string  `json:"aliases,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// ModelFile is one file of a folder version.
type ModelFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Model is a model of a workspace: its versions (oldest first) and aliases.
type Model struct {
	Name string `json:"name"`
	// LatestVersion is the highest version that exists; 0 when every version
	// was deleted (numbers are never given out again).
	LatestVersion int            `json:"latest_version"`
	Aliases       map[string]int `json:"aliases"`
	Versions      []ModelVersion `json:"versions"`
	CreatedAt     time.Time      `json:"created_at"`
}

// ModelList answers GET /v1/models, sorted by name.
type ModelList struct {
	Models []Model `json:"models"`
}

// ModelAliasSet is the body of PUT /v1/models/{name}/aliases/{alias}.
type ModelAliasSet struct {
	Version int `json:"version"`
}

// ModelAlias answers PUT /v1/models/{name}/aliases/{alias}.
type ModelAlias struct {
	Name    string `json:"name"`
	Alias   string `json:"alias"`
	Version int    `json:"version"`
}

// ModelAliasRE is the rule for alias names: like a job name, but starting
// with a letter, so that an alias is never taken for a version number.
var ModelAliasRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9._-]{0,127}$`)

// ModelRef names one version of a model: "iris:2" (a version) or
// "iris@production" (an alias).
type ModelRef struct {
	Name string
	// Version is set for "name:version", Alias for "name@alias".
	Version int
	Alias   string
}

func (r ModelRef) String() string {
	if r.Alias != "" {
		return r.Name + "@" + r.Alias
	}
	return r.Name + ":" + strconv.Itoa(r.Version)
}

// ParseModelRef reads "name:version" or "name@alias". It checks the shape
// (a name without ':', '@' or '/'); the name's own rule is the registry's.
func ParseModelRef(s string) (ModelRef, error) {
	if name, alias, ok := strings.Cut(s, "@"); ok {
		if name == "" || strings.ContainsAny(name, ":/") || !ModelAliasRE.MatchString(alias) {
			return ModelRef{}, fmt.Errorf("model %q: want NAME@ALIAS, the alias starting with a letter", s)
		}
		return ModelRef{Name: name, Alias: alias}, nil
	}
	name, v, ok := strings.Cut(s, ":")
	if !ok || name == "" || strings.Contains(name, "/") {
		return ModelRef{}, fmt.Errorf("model %q: want NAME:VERSION (iris:2) or NAME@ALIAS (iris@production)", s)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || strconv.Itoa(n) != v {
		return ModelRef{}, fmt.Errorf("model %q: the version must be a number from 1", s)
	}
	return ModelRef{Name: name, Version: n}, nil
}
