package gateway

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// FuzzArtifactAndModelPaths: the path checks of artifact URLs (escaped and
// not) and of model registration never panic, refuse with an API error
// (a 4xx the client sees), and what they accept stays below the job's
// outputs folder when joined to it.
func FuzzArtifactAndModelPaths(f *testing.F) {
	for _, p := range []string{
		"model.bin", "a/b/c.txt", "", "/", "..", "a/../../b", "%2e%2e%2f", "%2e%2e/x", "a//b",
		"a/./b", "a\\b", "a\x00b", "\xff", "%zz", "a/", "dir/", "%2F", ".hidden", "a/..b",
	} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p string) {
		const root = "/data/jobs/01J/outputs"
		check := func(what, got string, err error) {
			if err != nil {
				var ae *api.Error
				if !errors.As(err, &ae) {
					t.Fatalf("%s(%q): error %v (%T) is not an *api.Error", what, p, err, err)
				}
				return
			}
			dst := filepath.Join(root, filepath.FromSlash(got))
			rel, rerr := filepath.Rel(root, dst)
			if rerr != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || strings.HasPrefix(got, "/") {
				t.Fatalf("%s(%q) accepted %q, which resolves to %q outside %s", what, p, got, dst, root)
			}
		}
		got, err := artifactPath(p, false)
		check("artifactPath", got, err)
		got, err = artifactPath(p, true)
		check("artifactPath escaped", got, err)
		got, err = modelPath(p)
		check("modelPath", got, err)
	})
}
