package worker

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jobgate/jobgate/internal/artifact"
)

func TestCollectOutputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		max     int64
		wantErr error
		want    []string // keys stored
	}{
		{name: "under the cap", max: 1 << 20, want: []string{"jobs/j1/outputs/a.txt", "jobs/j1/outputs/model/w.bin"}},
		{name: "exactly the cap", max: 8, want: []string{"jobs/j1/outputs/a.txt", "jobs/j1/outputs/model/w.bin"}},
		{name: "over the cap", max: 7, wantErr: errOutputsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir, outside := t.TempDir(), t.TempDir()
			secret := filepath.Join(outside, "secret")
			for name, body := range map[string]string{"a.txt": "abc", "model/w.bin": "12345", secret: "do not collect"} {
				p := name
				if !filepath.IsAbs(p) {
					p = filepath.Join(dir, name)
				}
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// Links out of the folder, to a file and to a folder: skipped.
			if err := os.Symlink(secret, filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, "model", "dirlink")); err != nil {
				t.Fatal(err)
			}
			arts := artifact.Dir{Root: t.TempDir()}
			w := &Worker{cfg: Config{MaxOutputBytes: tt.max}, artifacts: arts}
			var note strings.Builder
			err := w.collectOutputs(context.Background(), "j1", dir, &note)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("collectOutputs: %v, want %v", err, tt.wantErr)
			}
			keys, err := arts.List(context.Background(), "jobs/j1/")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, keys); diff != "" {
				t.Fatalf("stored (-want +got):\n%s", diff)
			}
			if len(tt.want) > 0 {
				r, err := arts.Open(context.Background(), "jobs/j1/outputs/model/w.bin")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(r)
				r.Close()
				if string(b) != "12345" {
					t.Fatalf("w.bin = %q", b)
				}
			}
		})
	}
}

func TestCollectOutputsWithoutFolder(t *testing.T) {
	t.Parallel()
	w := &Worker{cfg: Config{MaxOutputBytes: 1}, artifacts: artifact.Dir{Root: t.TempDir()}}
	if err := w.collectOutputs(context.Background(), "j1", filepath.Join(t.TempDir(), "gone"), io.Discard); err != nil {
		t.Fatalf("a job that removed its outputs folder: %v", err)
	}
}

// TestCollectOutputsSkipsNamesTheStoreRefuses: a file whose name the
// artifact store cannot hold (a backslash in it) is skipped with a line in
// the log, as an unreadable file is; the others are collected and no error
// comes back, so the job's exit status decides its outcome.
func TestCollectOutputsSkipsNamesTheStoreRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, body := range map[string]string{`a\b.txt`: "x", `sub\dir/c.txt`: "y", "ok.txt": "abc"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	arts := artifact.Dir{Root: t.TempDir()}
	w := &Worker{cfg: Config{MaxOutputBytes: 1 << 20}, artifacts: arts}
	var note strings.Builder
	if err := w.collectOutputs(context.Background(), "j1", dir, &note); err != nil {
		t.Fatalf("collectOutputs: %v; want the backslash names skipped, not an error", err)
	}
	keys, err := arts.List(context.Background(), "jobs/j1/")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"jobs/j1/outputs/ok.txt"}, keys); diff != "" {
		t.Fatalf("stored (-want +got):\n%s", diff)
	}
	for _, want := range []string{`jobgate: outputs: skipped "a\\b.txt"`, `jobgate: outputs: skipped "sub\\dir/c.txt"`, "jobgate: collected 1 output files (3 bytes)"} {
		if !strings.Contains(note.String(), want) {
			t.Errorf("log %q lacks %q", note.String(), want)
		}
	}
}
