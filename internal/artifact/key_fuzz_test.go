package artifact

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCheckKey: a key CheckKey accepts stays below the store's root when
// joined to it, whatever it holds; nothing panics.
func FuzzCheckKey(f *testing.F) {
	for _, k := range []string{
		"jobs/01J/outputs/model.bin", "a", "..", "../x", "a/../b", "a/..", "/etc/passwd",
		"a\\..\\b", "a//b", "./a", "a/.", "..a/b", "a/..b", "\x00", "%2e%2e/x", "a/",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if CheckKey(key) != nil {
			return
		}
		root := "/srv/artifacts"
		dst := filepath.Join(root, filepath.FromSlash(key))
		rel, err := filepath.Rel(root, dst)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(key) {
			t.Fatalf("key %q accepted but resolves to %q, outside %s", key, dst, root)
		}
	})
}
