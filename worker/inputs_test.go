package worker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// inputTree makes base/root/ds, a datastore folder with data and links, and
// base/outside, a folder no input may reach:
//
//	root/ds/sets/v1/train.csv
//	root/ds/run.sh              (executable)
//	root/ds/link-in  -> sets    (stays inside)
//	root/ds/link-out -> outside
//	root/ds/secret   -> outside/secret
//	root/ds-link     -> outside (a datastore folder that became a link out of root)
func inputTree(t *testing.T) (root, ds, outside string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	ds = filepath.Join(root, "ds")
	files := map[string]string{
		filepath.Join(ds, "sets/v1/train.csv"): "a,b\n1,2\n",
		filepath.Join(ds, "run.sh"):            "#!/bin/sh\n",
		filepath.Join(outside, "secret"):       "do not read",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(ds, "run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		filepath.Join(ds, "link-in"):   "sets",
		filepath.Join(ds, "link-out"):  outside,
		filepath.Join(ds, "secret"):    filepath.Join(outside, "secret"),
		filepath.Join(root, "ds-link"): outside,
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	return root, ds, outside
}

func TestResolveInput(t *testing.T) {
	t.Parallel()
	root, ds, outside := inputTree(t)
	// Links that stay in the datastore but leave a path below it, which a
	// job's own input may end at (a child's input gets it as within).
	for link, target := range map[string]string{
		filepath.Join(ds, "sets/up"):        "..",
		filepath.Join(ds, "sets/now"):       "v1",
		filepath.Join(ds, "sets/v1/parent"): "..",
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name           string
		dsPath, dsRoot string
		sub            string
		within         []string
		want           string // empty: an error mentioning wantErr
		wantErr        string
	}{
		{name: "the whole datastore", dsPath: ds, dsRoot: root, want: ds},
		{name: "a folder", dsPath: ds, dsRoot: root, sub: "sets/v1", want: filepath.Join(ds, "sets/v1")},
		{name: "a file", dsPath: ds, dsRoot: root, sub: "sets/v1/train.csv", want: filepath.Join(ds, "sets/v1/train.csv")},
		{name: "a link that stays inside", dsPath: ds, dsRoot: root, sub: "link-in/v1", want: filepath.Join(ds, "sets/v1")},
		{name: "a link to a folder outside", dsPath: ds, dsRoot: root, sub: "link-out", wantErr: "leads out of the datastore's folder"},
		{name: "through a link outside", dsPath: ds, dsRoot: root, sub: "link-out/secret", wantErr: "leads out of the datastore's folder"},
		{name: "a link to a file outside", dsPath: ds, dsRoot: root, sub: "secret", wantErr: "leads out of the datastore's folder"},
		{name: "missing", dsPath: ds, dsRoot: root, sub: "sets/v2", wantErr: "sets/v2: no such file or directory"},
		{name: "datastore folder missing", dsPath: filepath.Join(root, "gone"), dsRoot: root, wantErr: "no such file or directory"},
		{name: "datastore folder became a link out of its root", dsPath: filepath.Join(root, "ds-link"), dsRoot: root, wantErr: "leads out of its datastore root"},
		{name: "the system admin's datastore may be anywhere", dsPath: filepath.Join(root, "ds-link"), want: outside},
		{name: "below the parent's path", dsPath: ds, dsRoot: root, sub: "sets/v1", within: []string{"sets"}, want: filepath.Join(ds, "sets/v1")},
		{name: "a link that stays below the parent's path", dsPath: ds, dsRoot: root, sub: "sets/now", within: []string{"sets"}, want: filepath.Join(ds, "sets/v1")},
		{name: "the parent's path through a link", dsPath: ds, dsRoot: root, sub: "link-in/v1", within: []string{"link-in"}, want: filepath.Join(ds, "sets/v1")},
		{name: "a link out of the parent's path", dsPath: ds, dsRoot: root, sub: "sets/up", within: []string{"sets"}, wantErr: "sets/up leads out of " + filepath.Join(ds, "sets") + ", the input of the job that submitted this one"},
		{name: "a file through a link out of the parent's path", dsPath: ds, dsRoot: root, sub: "sets/up/run.sh", within: []string{"sets"}, wantErr: "leads out of " + filepath.Join(ds, "sets") + ","},
		{name: "below the parent's path, out of the grandparent's", dsPath: ds, dsRoot: root, sub: "sets/v1/parent", within: []string{"sets/v1", "sets/v1/parent"}, wantErr: "leads out of " + filepath.Join(ds, "sets/v1") + ","},
		{name: "the parent's path is gone", dsPath: ds, dsRoot: root, sub: "sets/v1", within: []string{"gone"}, wantErr: filepath.Join(ds, "gone") + ", the input of the job that submitted this one: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolveInput(tt.dsPath, tt.dsRoot, tt.sub, tt.within)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("resolveInput = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("resolveInput = %q, %v; want an error mentioning %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestCopyInput(t *testing.T) {
	t.Parallel()
	_, ds, _ := inputTree(t)
	dst := filepath.Join(t.TempDir(), "data")
	var skipped []string
	budget := int64(1 << 20)
	files, size, err := copyInput(context.Background(), ds, dst, &budget, func(rel string) { skipped = append(skipped, rel) })
	if err != nil {
		t.Fatal(err)
	}
	if files != 2 || size != int64(len("a,b\n1,2\n")+len("#!/bin/sh\n")) || budget != 1<<20-size {
		t.Fatalf("copied %d files, %d bytes, %d left of the budget", files, size, budget)
	}
	slices.Sort(skipped)
	if diff := cmp.Diff([]string{"link-in", "link-out", "secret"}, skipped); diff != "" {
		t.Fatalf("skipped (-want +got):\n%s", diff)
	}
	// Exactly the regular files and folders, nothing from outside, all
	// writable by any user; the execute bit is kept.
	got := map[string]string{}
	err = filepath.WalkDir(dst, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dst, p)
		info, _ := e.Info()
		got[rel] = info.Mode().String()
		if info.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			got[rel] += " " + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		".":                 "drwxrwxrwx",
		"sets":              "drwxrwxrwx",
		"sets/v1":           "drwxrwxrwx",
		"sets/v1/train.csv": "-rw-rw-rw- a,b\n1,2\n",
		"run.sh":            "-rwxrw-rw- #!/bin/sh\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("copy (-want +got):\n%s", diff)
	}

	// One file.
	one := filepath.Join(t.TempDir(), "train.csv")
	if files, _, err := copyInput(context.Background(), filepath.Join(ds, "sets/v1/train.csv"), one, &budget, nil); err != nil || files != 1 {
		t.Fatalf("copy one file: %d files, %v", files, err)
	}
	if b, _ := os.ReadFile(one); string(b) != "a,b\n1,2\n" {
		t.Fatalf("copied file holds %q", b)
	}

	// A canceled copy stops with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := copyInput(ctx, ds, filepath.Join(t.TempDir(), "data"), &budget, func(string) {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled copy: %v, want context.Canceled", err)
	}

	// Past the budget the copy fails; up to it, it does not.
	for _, tt := range []struct {
		budget int64
		want   error
	}{{size, nil}, {size - 1, errInputTooLarge}} {
		b := tt.budget
		_, _, err := copyInput(context.Background(), ds, filepath.Join(t.TempDir(), "data"), &b, func(string) {})
		if !errors.Is(err, tt.want) {
			t.Fatalf("copy %d bytes with a budget of %d: %v, want %v", size, tt.budget, err, tt.want)
		}
	}
}

func TestMountsAreValidated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mounts  map[string]string
		wantErr string
	}{
		{name: "none"},
		{name: "a folder", mounts: map[string]string{"shared": dir}},
		{name: "upper-case name", mounts: map[string]string{"Shared": dir}, wantErr: "--mount Shared=" + dir + ": the name must be"},
		{name: "relative path", mounts: map[string]string{"shared": "data"}, wantErr: "--mount shared=data: the path must be absolute"},
		{name: "missing folder", mounts: map[string]string{"shared": filepath.Join(dir, "gone")}, wantErr: "the folder must exist on this machine"},
		{name: "a file", mounts: map[string]string{"shared": file}, wantErr: "not a folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Mounts: tt.mounts}.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
